"""Rules as code in .tfaudit.hcl: custom rules, re-rating and disabling built-ins, waivers, gates, errors."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from conftest import CliResult
from tfaudit.analysis.engine import Analyzer, AnalysisReport, analyse_plan
from tfaudit.analysis.model import Effect, Severity
from tfaudit.analysis.policy import Policy
from tfaudit.config import parse_config
from tfaudit.errors import ConfigError
from tfaudit.parse.plan import parse_plan

from analysis.test_analysis_rules import PAB, change, sg

TODAY = date(2026, 11, 26)


def policy_from(tmp_path: Path, text: str) -> Policy:
    path = tmp_path / ".tfaudit.hcl"
    path.write_text(text)
    return Policy.from_config(parse_config(path))


def found(pol: Policy, ch: Any) -> dict[str, Any]:
    return {f.rule: f for f in Analyzer(pol, today=TODAY).check(ch)}


DB = {"identifier": "orders", "engine": "postgres", "instance_class": "db.t3.micro",
      "tags": {"env": "prod", "team": "orders"}, "storage_encrypted": True}


def test_custom_rule_matches_type_address_action_and_conditions(tmp_path: Path) -> None:
    pol = policy_from(tmp_path, '''
rule "prod-db-delete" {
  message        = "production databases are never deleted by terraform"
  description    = "Restores take hours."
  severity       = "critical"
  effect         = "deny"
  resource_types = ["aws_db_*", "aws_rds_cluster"]
  addresses      = ["module.prod.*", "aws_db_instance.orders[*]"]
  actions        = ["delete", "replace"]
  condition {
    path   = "tags.env"
    equals = "prod"
  }
}
''')
    hit = found(pol, change("aws_db_instance", ["delete"], DB, address='aws_db_instance.orders["eu"]'))
    f = hit["prod-db-delete"]
    assert (f.severity, f.effect, f.category, f.why) == (Severity.CRITICAL, Effect.DENY, "custom", "Restores take hours.")
    assert f.message == "production databases are never deleted by terraform"
    # each matcher on its own can turn it off
    assert "prod-db-delete" not in found(pol, change("aws_db_instance", ["update"], DB, {**DB, "instance_class": "x"},
                                                    address='aws_db_instance.orders["eu"]'))
    assert "prod-db-delete" not in found(pol, change("aws_db_instance", ["delete"], DB, address="aws_db_instance.other"))
    assert "prod-db-delete" not in found(pol, change("aws_db_instance", ["delete"], {**DB, "tags": {"env": "dev"}},
                                                    address="module.prod.aws_db_instance.x"))
    assert "prod-db-delete" in found(pol, change("aws_db_instance", ["delete", "create"], DB, DB,
                                                address="module.prod.aws_db_instance.x"))


def test_conditions_contains_changed_side_and_wildcards(tmp_path: Path) -> None:
    pol = policy_from(tmp_path, '''
rule "world-anything" {
  message        = "opens something to the world"
  resource_types = ["aws_security_group"]
  condition {
    path     = "ingress[*].cidr_blocks"
    contains = "0.0.0.0/0"
  }
}
rule "class-change" {
  message = "instance class changes"
  condition {
    path    = "instance_class"
    changed = true
  }
}
rule "was-prod" {
  message = "touches something that was prod"
  actions = ["update"]
  condition {
    path   = "tags[\\"env\\"]"
    equals = "prod"
    side   = "before"
  }
}
''')
    world = sg({"from_port": 8443, "to_port": 8443, "cidr_blocks": ["10.0.0.0/8", "0.0.0.0/0"]})
    assert "world-anything" in found(pol, change("aws_security_group", ["create"], None, world))
    assert "world-anything" not in found(pol, change("aws_security_group", ["create"], None,
                                                    sg({"from_port": 1, "to_port": 1, "cidr_blocks": ["10.0.0.0/8"]})))
    moved = {**DB, "instance_class": "db.r6g.large", "tags": {"env": "dev"}}
    hits = found(pol, change("aws_db_instance", ["update"], DB, moved))
    assert {"class-change", "was-prod"} <= set(hits)
    assert "class-change" not in found(pol, change("aws_db_instance", ["update"], DB, {**DB, "tags": {"env": "prod", "x": "1"}}))
    # a pure delete is read from `before`: conditions still see the deleted object
    assert "world-anything" in found(pol, change("aws_security_group", ["delete"], world))
    # data-source reads and no-ops never match a rule that does not ask for them
    assert found(pol, change("aws_db_instance", ["no-op"], DB, DB)) == {}


def test_builtins_can_be_disabled_re_rated_and_made_deny(tmp_path: Path) -> None:
    pol = policy_from(tmp_path, '''
rules {
  disable  = ["destroy.delete"]
  severity = { "data.public-access-block-removed" = "critical" }
  effect   = { "audit.versioning-disabled" = "deny" }
  fail_on  = "high"
}
''')
    hits = found(pol, change("aws_s3_bucket_public_access_block", ["delete"], PAB))
    assert set(hits) == {"data.public-access-block-removed"}
    assert hits["data.public-access-block-removed"].severity is Severity.CRITICAL
    v = {"bucket": "b", "versioning_configuration": [{"status": "Enabled", "mfa_delete": ""}]}
    hits = found(pol, change("aws_s3_bucket_versioning", ["update"], v,
                             {**v, "versioning_configuration": [{"status": "Suspended", "mfa_delete": ""}]}))
    assert hits["audit.versioning-disabled"].effect is Effect.DENY
    assert pol.settings.fail_on is Severity.HIGH


def _report(pol: Policy, *changes: Any) -> AnalysisReport:
    analyzer = Analyzer(pol, today=TODAY)
    rep = AnalysisReport()
    for ch in changes:
        rep.add_change(ch, analyzer)
    return rep.finish(analyzer.policy_findings())


def test_waivers_silence_a_finding_until_they_expire(tmp_path: Path) -> None:
    pol = policy_from(tmp_path, '''
waiver {
  rule    = "network.world-ingress-web"
  address = "aws_security_group.public_lb*"
  reason  = "public load balancer, reviewed in SEC-123"
  expires = "2027-03-31"
}
waiver {
  rule    = "destroy.delete"
  address = "aws_instance.old"
  reason  = "decommissioning"
  expires = "2026-11-01"
}
''')
    web = sg({"from_port": 443, "to_port": 443, "cidr_blocks": ["0.0.0.0/0"]})
    rep = _report(pol, change("aws_security_group", ["create"], None, web, address="aws_security_group.public_lb[0]"),
                  change("aws_instance", ["delete"], {"id": "i-1"}, address="aws_instance.old"))
    by_rule = {f.rule: f for f in rep.findings}
    waived = by_rule["network.world-ingress-web"]
    assert waived.waived is not None and waived.waived.reason.startswith("public load balancer")
    assert not waived.active and waived not in rep.active
    # the expired waiver no longer applies, and is a finding itself
    assert by_rule["destroy.delete"].active
    expired = by_rule["waiver.expired"]
    assert expired.severity is Severity.MEDIUM and "expired on 2026-11-01" in expired.message
    assert rep.gate("low").over_threshold and waived not in rep.gate("low").over_threshold
    assert rep.as_dict()["findings"][-1]["waived"] == {"reason": "public load balancer, reviewed in SEC-123",
                                                       "expires": "2027-03-31"}


def test_gate_deny_and_fail_on_thresholds(tmp_path: Path) -> None:
    rep = _report(Policy(), change("aws_instance", ["delete"], {"id": "i"}))  # one medium finding
    assert not rep.gate(None).blocked
    assert rep.gate("medium").blocked and rep.gate("low").blocked and not rep.gate("high").blocked
    assert "1 finding at or above medium" in (rep.gate("medium").reason() or "")
    pol = policy_from(tmp_path, 'rule "no-delete" {\n  message = "no deletes"\n  effect = "deny"\n  severity = "info"\n'
                                '  actions = ["delete"]\n}\n')
    rep = _report(pol, change("aws_instance", ["delete"], {"id": "i"}))
    gate = rep.gate(None)
    assert gate.blocked and gate.reason() == "denied by rule no-delete: aws_instance.x: no deletes"


@pytest.mark.parametrize("text,message", [
    ('rule "x" {\n  message = "m"\n  sevrity = "high"\n  actions = ["delete"]\n}\n',
     'block rule "x": unknown key \'sevrity\''),
    ('rule "x" {\n  message = "m"\n  severity = "urgent"\n  actions = ["delete"]\n}\n',
     'block rule "x": severity must be one of info, low, medium, high, critical, not \'urgent\''),
    ('rule "x" {\n  message = "m"\n  effect = "block"\n  actions = ["delete"]\n}\n', 'block rule "x": effect must be one of'),
    ('rule "x" {\n  message = "m"\n  actions = ["destroy"]\n}\n', 'block rule "x": unknown action \'destroy\''),
    ('rule "x" {\n  message = "m"\n}\n', 'block rule "x": matches every change'),
    ('rule "x" {\n  actions = ["delete"]\n}\n', 'block rule "x": needs message'),
    ('rule "destroy.delete" {\n  message = "m"\n  actions = ["delete"]\n}\n', 'block rule "destroy.delete": has the id of a built-in rule'),
    ('rule "x" {\n  message = "m"\n  condition {\n    path = "a..b"\n    equals = 1\n  }\n}\n',
     'block rule "x": condition 1: path cannot read'),
    ('rule "x" {\n  message = "m"\n  condition {\n    path = "a"\n  }\n}\n',
     'block rule "x": condition 1 needs exactly one of equals, contains, changed'),
    ('rule "x" {\n  message = "m"\n  condition {\n    path = "a"\n    changed = "yes"\n  }\n}\n',
     'block rule "x": condition 1: changed must be true or false'),
    ('rules {\n  disable = ["destroy.everything"]\n}\n', "block rules: disable: 'destroy.everything' is not a built-in rule id"),
    ('rules {\n  severity = { "destroy.delete" = "huge" }\n}\n', 'block rules: severity of "destroy.delete" must be one of'),
    ('rules {\n  fail_on = "info"\n}\n', "block rules: fail_on must be low, medium, high or critical"),
    ('waiver {\n  rule = "destroy.delete"\n  address = "a"\n  reason = "r"\n}\n', 'block waiver "#1": needs expires'),
    ('waiver {\n  rule = "destroy.delete"\n  address = "a"\n  reason = "r"\n  expires = "31/12/2027"\n}\n',
     'block waiver "#1": expires must be a date like 2027-03-31'),
    ('waiver {\n  rule = "destroy.delete"\n  address = "a"\n  reason = "r"\n  expires = "2027-02-30"\n}\n',
     'block waiver "#1": expires \'2027-02-30\' is not a real date'),
    ('waiver {\n  rule = "no.such-rule"\n  address = "a"\n  reason = "r"\n  expires = "2027-01-01"\n}\n',
     'block waiver "#1": rule \'no.such-rule\' is neither a built-in nor a custom rule id'),
])
def test_config_errors_point_at_the_rule(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        policy_from(tmp_path, text)
    assert message in str(info.value), str(info.value)
    assert str(tmp_path / ".tfaudit.hcl") in str(info.value) and "\n" not in str(info.value)


def test_config_validate_and_analyze_report_a_bad_rule_with_exit_64(tmp_path: Path, run_tfaudit: Callable[..., CliResult]) -> None:
    (tmp_path / ".tfaudit.hcl").write_text('rule "oops" {\n  message = "m"\n  severity = "urgent"\n  actions = ["delete"]\n}\n')
    plan = tmp_path / "plan.json"
    plan.write_text(json.dumps({"format_version": "1.2", "resource_changes": []}))
    for args in (("config", "validate"), ("analyze", str(plan))):
        res = run_tfaudit(*args, cwd=tmp_path)
        assert res.returncode == 64, res.output
        assert 'block rule "oops": severity must be one of' in res.stderr
        assert res.stderr.count("\n") == 1


def test_analyze_applies_the_config_in_the_working_directory(tmp_path: Path, run_tfaudit: Callable[..., CliResult]) -> None:
    (tmp_path / ".tfaudit.hcl").write_text(
        'rule "no-prod-delete" {\n  message = "prod is never deleted"\n  effect = "deny"\n  severity = "high"\n'
        '  actions = ["delete"]\n  addresses = ["module.prod.*"]\n}\n'
        'rules {\n  severity = { "destroy.delete" = "low" }\n}\n')
    doc = {"format_version": "1.2", "terraform_version": "1.11.4", "resource_changes": [
        {"address": "module.prod.aws_instance.web", "module_address": "module.prod", "mode": "managed",
         "type": "aws_instance", "name": "web", "provider_name": "registry.terraform.io/hashicorp/aws",
         "change": {"actions": ["delete"], "before": {"id": "i-1"}, "after": None, "after_unknown": {},
                    "before_sensitive": {}, "after_sensitive": False}}]}
    (tmp_path / "plan.json").write_text(json.dumps(doc))
    res = run_tfaudit("analyze", "plan.json", "--format", "json", cwd=tmp_path)
    assert res.returncode == 5, res.output
    out = json.loads(res.stdout)
    assert [(f["rule"], f["severity"], f["effect"]) for f in out["findings"]] == [
        ("no-prod-delete", "high", "deny"), ("destroy.delete", "low", "warn")]
    assert out["gate"]["blocked"] and "denied by rule no-prod-delete" in res.stderr
    plan = parse_plan(json.dumps(doc))
    assert analyse_plan(plan, Analyzer(Policy())).findings[0].severity is Severity.MEDIUM
