"""Redaction: masks, secret-looking names, credential-shaped values, and the real-world corpus."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import rfc8785

from corpus import CORPUS as REAL_WORLD, manifest_rows, needs_corpus
from tfaudit import records
from tfaudit.errors import PlanError
from tfaudit.parse.plan import load_plans
from tfaudit.redact import REDACTED, SENSITIVE, UNKNOWN, Redactor

AWS_EXAMPLE_SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"


def test_terraform_masks_hide_values_and_are_learned() -> None:
    r = Redactor()
    value = {"user": "app", "password": "hunter2-xyz", "nested": [{"k": "s3cret-value"}, {"k": "ok"}]}
    mask = {"password": True, "nested": [{"k": True}, {}]}
    out = r.value(value, mask)
    assert out == {"user": "app", "password": SENSITIVE, "nested": [{"k": SENSITIVE}, {"k": "ok"}]}
    # once learned, a secret is scrubbed out of free text such as an error message
    assert r.scrub("connect failed for hunter2-xyz at db") == f"connect failed for {SENSITIVE} at db"


def test_secret_looking_names_and_values() -> None:
    r = Redactor.with_additions(names=["^pin$"])
    out = r.value({"api_token": "abc123456", "db_password": "x" * 8, "pin": "1234", "name": "web",
                   "user_data": f"export AWS_ACCESS_KEY_ID=AKIAIOSFODNN7EXAMPLE\nexport K={AWS_EXAMPLE_SECRET}\n",
                   "url": "https://bob:pa55word@git.example.com/repo.git",
                   "commit": "0123456789abcdef0123456789abcdef01234567"})
    assert r.value({"disable_password_authentication": True})["disable_password_authentication"] is True
    assert out["api_token"] == REDACTED and out["db_password"] == REDACTED and out["pin"] == REDACTED
    assert out["name"] == "web"
    assert "AKIAIOSFODNN7EXAMPLE" not in out["user_data"] and AWS_EXAMPLE_SECRET not in out["user_data"]
    assert "pa55word" not in out["url"] and out["url"].startswith("https://")
    assert out["commit"] == "0123456789abcdef0123456789abcdef01234567"  # a git sha is not a secret


def test_unknown_values_are_marked() -> None:
    r = Redactor()
    assert r.value({"a": 1}, None, {"id": True}) == {"a": 1, "id": UNKNOWN}


def test_var_arguments_never_recorded() -> None:
    r = Redactor()
    assert r.argv(["-var", "pw=hunter2", "-var=x=1", "-target=a.b", "-var-file=prod.tfvars"]) == [
        "-var", f"pw={REDACTED}", f"-var=x={REDACTED}", "-target=a.b", "-var-file=prod.tfvars"]


def _string_leaves(value: object) -> list[str]:
    if isinstance(value, dict):
        return [s for v in value.values() for s in _string_leaves(v)]
    if isinstance(value, list):
        return [s for v in value for s in _string_leaves(v)]
    return [value] if isinstance(value, str) else []


@needs_corpus
@pytest.mark.parametrize("rel", [r["path"] for r in manifest_rows("plan")])
def test_records_from_real_plans_validate_and_leak_nothing(rel: str) -> None:
    from tfaudit.schema import schema_errors

    try:
        plans = load_plans(REAL_WORLD / rel)
    except PlanError:
        return  # invalid files: their clean error is covered by the parser tests
    for plan in plans:
        r = Redactor()
        records.learn_plan_secrets(plan, r)
        run = records.RunInfo(id=records.RunId(records.new_id()), command="apply", args=(), tool="terraform",
                              tool_version=plan.terraform_version, workspace="default", working_dir="/w")
        recs = [records.base_record("run.started", run, {"user": "u"}, plan=records.plan_body(plan, None, r))]
        for ch in plan.resource_changes:
            if records.is_recorded_change(ch):
                recs.append(records.base_record("resource.changed", run, {"user": "u"},
                                                resource=records.resource_body(ch, records.Outcome("planned"), r)))
        blob = b"\n".join(rfc8785.dumps(x) for x in recs).decode()
        assert not re.search(r"\bAKIA[0-9A-Z]{16}\b", blob)
        assert AWS_EXAMPLE_SECRET not in blob
        # values terraform marked sensitive appear in no recorded attribute value
        leaves = _string_leaves([(x.get("resource") or {}).get(k) for x in recs for k in ("before", "after")])
        for secret in r._known:
            assert not any(secret in leaf for leaf in leaves), secret
        for rec in recs:
            body = {**rec, "chain": {"seq": 1, "prev": None},
                    "signature": {"alg": "ed25519", "key_id": "sha256:" + "0" * 64, "value": "AA=="}}
            assert schema_errors(body) == [], (rel, rec["type"])
