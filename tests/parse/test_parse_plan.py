"""tfaudit.parse.plan against the real-world corpus and plans made by real terraform."""

from __future__ import annotations

import codecs
import csv
import json
import re
from pathlib import Path
from typing import Any

import pytest

from tfaudit.errors import PlanError
from tfaudit.parse import ChangeAction, Plan, load_plan, load_plans, parse_plan, parse_plans

from corpus import CORPUS, corpus_file as _corpus, manifest_rows as _rows, needs_corpus  # noqa: F401
FIXTURES = Path(__file__).parents[2] / "fixtures" / "parse"
REAL_PLAN = FIXTURES / "tf1.11.4-replace-and-fail.plan.json"



PLAN_ROWS = _rows("plan")
# Rows the notes call not-JSON; the wrapper and multi-document files are JSON once unwrapped.
INVALID = [r for r in PLAN_ROWS if "INVALID JSON" in r["notes"]]
NO_FORMAT_VERSION = [r for r in PLAN_ROWS if "format_version=None" in r["notes"]
                     and "plan_format_version" not in r["notes"]]
VALID = [r for r in PLAN_ROWS if r not in INVALID and r not in NO_FORMAT_VERSION]


def _ids(rows: list[dict[str, str]]) -> list[str]:
    return [r["path"] for r in rows]


def _action_words(plans: list[Plan]) -> set[str]:
    # The MANIFEST spells two-step actions as replace:delete-create / replace:create-delete.
    return {"replace:" + "-".join(rc.actions) if len(rc.actions) == 2 else rc.actions[0]
            for p in plans for rc in p.resource_changes}


@needs_corpus
@pytest.mark.parametrize("row", VALID, ids=_ids(VALID))
def test_corpus_plan_changes_and_actions_match_manifest(row: dict[str, str]) -> None:
    plans = load_plans(_corpus(row["path"]))
    assert sum(len(p.resource_changes) for p in plans) == int(row["n_resource_changes"] or 0)
    assert _action_words(plans) == set(filter(None, row["actions_present"].split(",")))
    if row["terraform_version"]:
        assert {p.terraform_version for p in plans} == {row["terraform_version"]}


@needs_corpus
@pytest.mark.parametrize("row", INVALID, ids=_ids(INVALID))
def test_corpus_invalid_json_is_a_one_line_plan_error_without_contents(row: dict[str, str]) -> None:
    path = _corpus(row["path"])
    with pytest.raises(PlanError) as info:
        load_plan(path)
    message = info.value.message
    assert re.fullmatch(re.escape(str(path)) + r": not valid JSON \([a-zA-Z ',]+ at line \d+ column \d+\)", message)
    assert "\n" not in str(info.value)
    assert info.value.hint == "pass the output of 'terraform show -json PLANFILE'"


@needs_corpus
def test_mojibake_utf16_plan_reports_the_position_the_manifest_gives() -> None:
    path = _corpus("Naver-Dunamu-Merge-TF__NSC-infra/nsc-infra.plan.json")
    with pytest.raises(PlanError) as info:
        load_plan(path)
    assert info.value.message == f"{path}: not valid JSON (Expecting ',' delimiter at line 1 column 208665)"


@needs_corpus
@pytest.mark.parametrize("row", NO_FORMAT_VERSION, ids=_ids(NO_FORMAT_VERSION))
def test_corpus_plan_without_format_version_is_rejected(row: dict[str, str]) -> None:
    with pytest.raises(PlanError, match="has no format_version"):
        load_plan(_corpus(row["path"]))


@needs_corpus
def test_terragrunt_multi_plan_file_is_three_plans_and_load_plan_says_so() -> None:
    path = _corpus("borchero__terraform-plan-comment/basic_6-terragrunt-multiplan.plan.json")
    plans = load_plans(path)
    assert len(plans) == 3
    assert all(len(p.resource_changes) == 1 for p in plans)
    with pytest.raises(PlanError, match="holds 3 concatenated plans, expected one"):
        load_plan(path)


@needs_corpus
def test_setup_terraform_wrapper_output_yields_the_wrapped_plan() -> None:
    plan = load_plan(_corpus("infracost__infracost/plan_with_terraform_wrapper.wrapped-plan.json"))
    assert (plan.format_version, plan.terraform_version) == ("0.2", "1.0.11")
    assert [rc.action for rc in plan.resource_changes] == [ChangeAction.CREATE, ChangeAction.CREATE]


def test_wrapper_with_foreign_trailing_text_is_still_an_error() -> None:
    body = json.dumps({"format_version": "1.2", "planned_values": {}})
    with pytest.raises(PlanError, match=r"not valid JSON"):
        parse_plan(f"[command]/usr/bin/terraform show -json p\n{body}\nsome other tool's output\n")


@needs_corpus
@pytest.mark.parametrize("encoding", ["utf-8-sig", "utf-16-le", "utf-16-be"])
def test_bom_encodings_and_crlf_parse_like_plain_utf8(encoding: str) -> None:
    original = _corpus("hashicorp__terraform-json/basic.plan.json").read_text(encoding="utf-8")
    text = json.dumps(json.loads(original), indent=2).replace("\n", "\r\n")
    bom = {"utf-8-sig": b"", "utf-16-le": codecs.BOM_UTF16_LE, "utf-16-be": codecs.BOM_UTF16_BE}[encoding]
    plan = parse_plan(bom + text.encode(encoding), source="converted.json")
    assert plan == parse_plan(original)


@needs_corpus
def test_powershell_utf16_plan_parses() -> None:
    plan = load_plan(_corpus("Anupriya35__aws-kubernetes-cluster/aws-kubernetes-cluster.plan.json"))
    assert plan.terraform_version == "1.0.3"
    assert len(plan.resource_changes) == 38


def test_utf16_without_bom_is_an_error_naming_the_offset() -> None:
    with pytest.raises(PlanError, match=r"^x\.json: not UTF-8 text \(undecodable bytes at offset \d+\)"):
        parse_plan(b'{"a": "\xff\xfe"}', source="x.json")


@needs_corpus
@pytest.mark.parametrize(("rel", "looks_like"), [
    ("snyk__driftctl/aws_vpc.tfstate", "looks like a state file, not a plan"),
    ("hashicorp__terraform/show-json-state_modules.state-values.json", "looks like 'terraform show -json' output of a state"),
    ("bridgecrewio__checkov/corrupted-tfplan.plan.json", "looks like 'terraform show -json' output of a state"),
    ("opentofu__opentofu/init-encryption-with-state.encrypted.tfstate", "looks like an OpenTofu encrypted state"),
    ("retailnext__tf-report-action/apply-success-real.jsonl", "looks like a machine-readable UI stream"),
    ("hashicorp__terraform/equivalence_moved_simple.apply-stream.json", "looks like machine-readable UI messages"),
])
def test_other_terraform_documents_are_named_in_the_error(rel: str, looks_like: str) -> None:
    with pytest.raises(PlanError, match=re.escape(looks_like)) as info:
        load_plan(_corpus(rel))
    assert "terraform show -json PLANFILE" in str(info.value)


@pytest.mark.parametrize(("version", "ok"), [("0.1", True), ("1.2", True), ("1.9", True), ("2.0", False)])
def test_format_version_major_0_and_1_accepted_others_rejected(version: str, ok: bool) -> None:
    doc = {"format_version": version, "planned_values": {}}
    if ok:
        assert parse_plan(doc).format_version == version
    else:
        with pytest.raises(PlanError, match=f"unsupported format_version {version}"):
            parse_plan(doc)


def _one_change(actions: list[str], **extra: Any) -> dict[str, Any]:
    rc = {"address": "terraform_data.x", "mode": "managed", "type": "terraform_data", "name": "x",
          "provider_name": "terraform.io/builtin/terraform",
          "change": {"actions": actions, "before": None, "after": None}, **extra}
    return {"format_version": "1.2", "planned_values": {}, "resource_changes": [rc]}


@pytest.mark.parametrize("actions", [["destroy"], ["create", "create"], [], ["update", "delete"]])
def test_unknown_actions_are_rejected(actions: list[str]) -> None:
    with pytest.raises(PlanError, match=r"terraform_data\.x\) has unknown actions"):
        parse_plan(_one_change(actions), source="p.json")


def test_unknown_action_value_is_not_echoed() -> None:
    with pytest.raises(PlanError) as info:
        parse_plan(_one_change(["hunter2-SECRET!!"]))
    assert "hunter2" not in str(info.value)


@pytest.mark.parametrize(("actions", "extra", "expected"), [
    (["create"], {}, ChangeAction.CREATE),
    (["delete", "create"], {}, ChangeAction.REPLACE),
    (["create", "delete"], {}, ChangeAction.REPLACE),
    (["create", "forget"], {}, ChangeAction.REPLACE),
    (["forget"], {}, ChangeAction.FORGET),
    (["read"], {}, ChangeAction.READ),
    (["no-op"], {}, ChangeAction.NO_OP),
    (["no-op"], {"previous_address": "terraform_data.old"}, ChangeAction.MOVE),
    (["no-op"], {"previous_address": "terraform_data.old", "change_importing": {"id": "i"}}, ChangeAction.MOVE),
    (["update"], {"previous_address": "terraform_data.old"}, ChangeAction.UPDATE),
])
def test_action_word(actions: list[str], extra: dict[str, Any], expected: ChangeAction) -> None:
    importing = extra.pop("change_importing", None)
    doc = _one_change(actions, **extra)
    if importing:
        doc["resource_changes"][0]["change"]["importing"] = importing
    assert parse_plan(doc).resource_changes[0].action == expected


@needs_corpus
@pytest.mark.parametrize(("rel", "address", "action", "actions"), [
    ("borchero__terraform-plan-comment/basic_1-modify.plan.json", None, ChangeAction.REPLACE, ("delete", "create")),
    ("bridgecrewio__checkov/plan_with_deleted_resources.plan.json", None, ChangeAction.REPLACE, ("create", "delete")),
    ("borchero__terraform-plan-comment/import_0-import.plan.json", None, ChangeAction.IMPORT, ("no-op",)),
    ("borchero__terraform-plan-comment/move_1-move.plan.json", "local_file.after", ChangeAction.MOVE, ("no-op",)),
    ("borchero__terraform-plan-comment/basic_3-remove.plan.json", None, ChangeAction.FORGET, ("forget",)),
    ("hashicorp__terraform-json/identity.plan.json", None, ChangeAction.UPDATE, ("update",)),
])
def test_real_plans_get_the_action_terraform_would_show(rel: str, address: str | None, action: ChangeAction,
                                                        actions: tuple[str, ...]) -> None:
    plan = load_plan(_corpus(rel))
    matching = [rc for rc in plan.resource_changes if rc.actions == actions and address in (None, rc.address)]
    assert matching and all(rc.action == action for rc in matching)


@needs_corpus
def test_moves_and_imports_count_as_changes_but_reads_and_no_ops_do_not() -> None:
    moved = load_plan(_corpus("borchero__terraform-plan-comment/move_1-move.plan.json"))
    assert [(rc.address, rc.previous_address) for rc in moved.changes] == [("local_file.after", "local_file.before")]
    imported = load_plan(_corpus("hashicorp__terraform/cloud_plan-import-config-gen.plan.json"))
    (rc,) = imported.changes
    assert rc.importing == {"id": "bar"}
    assert rc.generated_config is not None and rc.generated_config.startswith('resource "terraform_data" "foo"')
    no_op = load_plan(_corpus("hashicorp__terraform-json/has_changes.plan.json"))
    assert no_op.changes == () and len(no_op.resource_changes) == 6


@needs_corpus
def test_terraform_1_0_0_drift_without_address_gets_one_built_from_its_parts() -> None:
    plan = load_plan(_corpus("terraform-compliance__cli/test_issue_522.plan.json"))
    addresses = {rc.address for rc in plan.resource_drift}
    assert len(plan.resource_drift) == 15
    assert {"aws_cloudwatch_event_rule.metrics_schedule", "aws_lambda_function.lambda"} <= addresses


@needs_corpus
def test_errored_plan_flags() -> None:
    plan = load_plan(_corpus("hashicorp__terraform/show-json_plan-error.plan.json"))
    assert (plan.errored, plan.applyable, plan.complete, plan.resource_changes) == (True, False, False, ())
    tofu = load_plan(_corpus("opentofu__opentofu/show-json_plan-error.plan.json"))
    assert (tofu.errored, tofu.applyable, tofu.complete) == (True, None, None)


@needs_corpus
def test_hcp_redacted_plan_uses_plan_format_version() -> None:
    plan = load_plan(_corpus("hashicorp__terraform/cloud_plan-json-full.plan-redacted.json"))
    assert plan.format_version == "1.1"
    assert len(plan.resource_changes) == 2 and len(plan.resource_drift) == 1


@needs_corpus
def test_replace_paths_and_index_types() -> None:
    plan = load_plan(_corpus("hashicorp__terraform/equivalence_replace_within_map.plan.json"))
    assert plan.resource_changes[0].replace_paths == (("map", "key_two", "id"),)
    keyed = load_plan(_corpus("borchero__terraform-plan-comment/basic_7-create-hundreds.plan.json"))
    assert all(isinstance(rc.index, str) and rc.address.endswith(f'["{rc.index}"]') for rc in keyed.resource_changes)


@pytest.mark.parametrize("data", [b"", b"  \r\n", "\ufeff"])
def test_empty_input_is_a_plan_error(data: bytes | str) -> None:
    with pytest.raises(PlanError, match=r"^plan\.json: is empty"):
        parse_plan(data, source="plan.json")


def test_unreadable_path_is_a_plan_error(tmp_path: Path) -> None:
    with pytest.raises(PlanError, match="cannot read"):
        load_plan(tmp_path / "missing.json")


# --- a plan made by terraform 1.11.4 (fixtures/parse/make_fixtures.sh) ---------------------------
@pytest.fixture(scope="module")
def real_plan() -> Plan:
    return load_plan(REAL_PLAN)


def test_real_plan_actions_per_address(real_plan: Plan) -> None:
    assert {rc.address: rc.actions for rc in real_plan.resource_changes} == {
        "terraform_data.after_bad[0]": ("create",),
        "terraform_data.bad[0]": ("create",),
        "terraform_data.cbd": ("create", "delete"),
        "terraform_data.keep": ("no-op",),
        "terraform_data.secret": ("no-op",),
        "terraform_data.stuck": ("delete", "create"),
        "terraform_data.swap": ("delete", "create"),
        "terraform_data.updated": ("update",),
        'module.child["x"].terraform_data.inner["a"]': ("update",),
        'module.child["x"].terraform_data.inner["b"]': ("update",),
    }
    assert {rc.address for rc in real_plan.changes} == {
        rc.address for rc in real_plan.resource_changes if rc.actions != ("no-op",)}


def test_real_plan_replace_metadata(real_plan: Plan) -> None:
    swap = real_plan.change_for("terraform_data.swap")
    assert swap is not None
    assert swap.action == ChangeAction.REPLACE and swap.action_reason == "replace_because_cannot_update"
    assert swap.replace_paths == (("triggers_replace",),)


def test_real_plan_module_and_index(real_plan: Plan) -> None:
    inner = real_plan.change_for('module.child["x"].terraform_data.inner["a"]')
    assert inner is not None
    assert (inner.module, inner.index, inner.type, inner.name) == ('module.child["x"]', "a", "terraform_data", "inner")
    bad = real_plan.change_for("terraform_data.bad[0]")
    assert bad is not None and bad.index == 0 and bad.module is None


def test_real_plan_sensitive_variables_and_outputs(real_plan: Plan) -> None:
    assert real_plan.sensitive_variables == {"token"}
    assert real_plan.variable_names == {"rev", "second_run", "token"}
    assert {o.name: o.sensitive for o in real_plan.output_changes} == {"keep_id": False, "token": True}
    assert (real_plan.terraform_version, real_plan.format_version) == ("1.11.4", "1.2")
    assert real_plan.applyable is True and real_plan.errored is False


def test_real_plan_raw_is_read_only_and_keeps_only_the_small_members(real_plan: Plan) -> None:
    assert "variables" in real_plan.raw and "output_changes" in real_plan.raw
    # the big sections are typed fields or unused: not held for the whole run
    assert not {"configuration", "prior_state", "planned_values", "resource_changes"} & set(real_plan.raw)
    with pytest.raises(TypeError):
        real_plan.raw["variables"] = {}  # type: ignore[index]


def test_parse_plans_of_a_single_document_is_a_list_of_one() -> None:
    assert parse_plans(REAL_PLAN.read_bytes()) == [parse_plan(REAL_PLAN.read_text())]


def test_plan_checks_survive_the_trimmed_raw() -> None:
    from tfaudit.parse.plan import plan_checks

    check = {"address": {"kind": "check", "name": "health", "to_display": "check.health"}, "status": "fail",
             "instances": [{"address": {"to_display": "check.health"}, "status": "fail", "problems": [{"message": "down"}]}]}
    plan = parse_plan(json.dumps({"format_version": "1.2", "resource_changes": [], "checks": [check],
                                  "prior_state": {"values": {}}, "configuration": {"root_module": {}}}))
    assert [dict(c) for c in plan_checks(plan)] == [
        {"address": "check.health", "kind": "check", "status": "fail", "problems": ("down",)}]
    assert "prior_state" not in plan.raw and "configuration" not in plan.raw
