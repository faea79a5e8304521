"""tfaudit.parse.events against the real-world corpus and streams from real terraform."""

from __future__ import annotations

import codecs
import csv
import json
import re
from collections import Counter
from pathlib import Path

import pytest

from tfaudit.errors import StreamError
from tfaudit.parse import ApplyTracker, Event, OutcomeStatus, load_stream, parse_event_line, parse_stream
from tfaudit.parse.events import Diagnostic

from corpus import CORPUS, corpus_file as _corpus, manifest_rows as _rows, needs_corpus  # noqa: F401
FIXTURES = Path(__file__).parents[2] / "fixtures" / "parse"
REAL_FAILED = FIXTURES / "tf1.11.4-replace-and-fail.apply.jsonl"
REAL_CREATE = FIXTURES / "tf1.11.4-create-all.apply.jsonl"


STREAM_ROWS = _rows("apply-stream")
# `terraform test -json` and `query -json` streams use the same message envelope.
OTHER_STREAMS = [r for r in _rows("other") if "format: jsonl" in r["notes"]]
NOT_STREAMS = [r for r in _rows("other") if r not in OTHER_STREAMS]
_HOOK_TYPES = {"apply_start", "apply_progress", "apply_complete", "apply_errored"}


def _ids(rows: list[dict[str, str]]) -> list[str]:
    return [r["path"] for r in rows]


def _manifest_types(notes: str) -> Counter[str]:
    match = re.search(r"types\{([^}]*)\}", notes)
    assert match, "every stream row lists its message types"
    return Counter({k: int(v) for k, v in (pair.split("=") for pair in match.group(1).split(","))})


@needs_corpus
@pytest.mark.parametrize("row", STREAM_ROWS + OTHER_STREAMS, ids=_ids(STREAM_ROWS + OTHER_STREAMS))
def test_corpus_stream_message_types_match_manifest(row: dict[str, str]) -> None:
    events = load_stream(_corpus(row["path"]))
    assert Counter(e.type for e in events) == _manifest_types(row["notes"])


@needs_corpus
@pytest.mark.parametrize("row", STREAM_ROWS, ids=_ids(STREAM_ROWS))
def test_corpus_stream_resources_and_actions_match_manifest(row: dict[str, str]) -> None:
    events = load_stream(_corpus(row["path"]))
    if "count of planned_change" in row["notes"]:
        counted = [e.address for e in events if e.type == "planned_change"]
    else:
        counted = list({e.address for e in events if e.type in _HOOK_TYPES})
    assert len(counted) == int(row["n_resource_changes"])
    assert {e.action for e in events if e.action} == set(filter(None, row["actions_present"].split(",")))


@needs_corpus
@pytest.mark.parametrize("row", STREAM_ROWS, ids=_ids(STREAM_ROWS))
def test_corpus_stream_outcomes_follow_the_hooks(row: dict[str, str]) -> None:
    events = load_stream(_corpus(row["path"]))
    tracker = ApplyTracker(events)
    errored = {e.address for e in events if e.type == "apply_errored"}
    completed = {e.address for e in events if e.type == "apply_complete"}
    diagnosed = {e.diagnostic.address for e in events if e.diagnostic and e.diagnostic.is_error}
    planned_only = {e.address for e in events if e.type == "planned_change"} - completed - errored - diagnosed
    for address in errored | diagnosed - {None}:
        assert tracker.outcome(str(address)).status is OutcomeStatus.FAILED
    for address in completed - errored - diagnosed:
        assert tracker.outcome(str(address)).status is OutcomeStatus.SUCCEEDED
    for address in planned_only:
        assert tracker.outcome(str(address)).status is OutcomeStatus.NOT_ATTEMPTED


@needs_corpus
def test_corpus_failed_provisioner_is_a_failed_resource_with_the_diagnostic() -> None:
    tracker = ApplyTracker(load_stream(_corpus(
        "hashicorp__terraform/cloud_apply-json-with-provisioner-error.apply.jsonl")))
    outcome = tracker.outcome("null_resource.foo")
    assert outcome.status is OutcomeStatus.FAILED
    assert outcome.actions == ("delete", "create")
    assert [(d.summary, d.detail) for d in outcome.errors] == [
        ("local-exec provisioner error", "Error running command 'exit 125': exit status 125. Output: ")]
    assert (outcome.errors[0].filename, outcome.errors[0].line) == ("main.tf", 2)
    assert outcome.provisioner_errors == ("local-exec",)
    assert tracker.errors_without_address == ()


@needs_corpus
def test_corpus_error_without_address_is_kept_separately() -> None:
    tracker = ApplyTracker(load_stream(_corpus("hashicorp__terraform/cloud_apply-json-with-error.plan.jsonl")))
    assert [d.summary for d in tracker.errors_without_address] == ["Unsupported block type"]
    assert tracker.outcomes() == {}


@needs_corpus
def test_corpus_opentofu_stream_version_and_summary() -> None:
    tracker = ApplyTracker(load_stream(_corpus("retailnext__tf-report-action/apply-success-real.jsonl")))
    assert (tracker.terraform_version, tracker.ui_version) == ("1.6.2", "1.2")
    summary = tracker.change_summary
    assert summary is not None and (summary.operation, summary.add, summary.remove) == ("apply", 1, 0)
    outcome = tracker.outcome("random_pet.demo")
    assert (outcome.status, outcome.id_key, outcome.id_value) == (OutcomeStatus.SUCCEEDED, "id", "game-pigeon")


@needs_corpus
def test_corpus_json_array_form_is_read() -> None:
    events = load_stream(_corpus("hashicorp__terraform/equivalence_local_provider_update.apply-stream.json"))
    assert [e.type for e in events][:3] == ["planned_change", "apply_start", "apply_complete"]
    assert ApplyTracker(events).outcome("local_file.local_file").actions == ("delete", "create")


@needs_corpus
@pytest.mark.parametrize("row", NOT_STREAMS, ids=_ids(NOT_STREAMS))
def test_corpus_non_stream_json_is_a_stream_error_naming_what_it_is(row: dict[str, str]) -> None:
    with pytest.raises(StreamError, match="has no machine-readable UI messages; it looks like a single diagnostic"):
        load_stream(_corpus(row["path"]))


@needs_corpus
def test_a_plan_passed_as_stream_is_named() -> None:
    with pytest.raises(StreamError, match="it looks like a plan from 'terraform show -json PLANFILE'"):
        load_stream(_corpus("borchero__terraform-plan-comment/basic_0-create.plan.json"))


def test_plain_text_is_a_stream_error() -> None:
    with pytest.raises(StreamError, match=r"^out\.txt: has no machine-readable UI messages; it looks like plain text"):
        parse_stream("Apply complete! Resources: 1 added.\n", source="out.txt")


# --- single lines -----------------------------------------------------------------------------------
def test_blank_lines_are_none() -> None:
    assert parse_event_line("") is None
    assert parse_event_line(b"  \r\n") is None


def test_non_json_line_is_a_text_event() -> None:
    event = parse_event_line(b"panic: runtime error: invalid memory address\r\n")
    assert event is not None
    assert (event.type, event.message) == ("text", "panic: runtime error: invalid memory address")


def test_json_that_is_not_an_object_is_a_text_event() -> None:
    event = parse_event_line("[1, 2]")
    assert event is not None and event.type == "text"


def test_hook_fields_are_read_and_deposed_is_kept_when_present() -> None:
    line = json.dumps({"@level": "info", "@message": "x: Destroying...", "@timestamp": "2026-01-01T00:00:00Z",
                       "type": "apply_start", "hook": {"resource": {"addr": "aws_instance.x"}, "action": "delete",
                                                       "id_key": "id", "id_value": "i-1", "deposed": "0a1b2c3d"}})
    event = parse_event_line(line)
    assert event == Event(type="apply_start", level="info", message="x: Destroying...",
                          timestamp="2026-01-01T00:00:00Z", address="aws_instance.x", action="delete",
                          elapsed_seconds=None, id_key="id", id_value="i-1", diagnostic=None,
                          raw=json.loads(line), deposed="0a1b2c3d")


def test_crash_text_between_messages_does_not_lose_the_rest() -> None:
    lines = REAL_CREATE.read_text().splitlines()
    data = "\n".join([*lines[:3], "goroutine 1 [running]:", *lines[3:]])
    events = parse_stream(data)
    tracker = ApplyTracker(events)
    assert tracker.text_lines == ("goroutine 1 [running]:",)
    assert len(events) == len(lines) + 1


@pytest.mark.parametrize("bom,encoding", [(codecs.BOM_UTF16_LE, "utf-16-le"), (codecs.BOM_UTF8, "utf-8")])
def test_powershell_redirected_stream_parses(bom: bytes, encoding: str) -> None:
    text = REAL_CREATE.read_text()
    assert parse_stream(bom + text.replace("\n", "\r\n").encode(encoding)) == parse_stream(text)


# --- terraform 1.11.4: failing provisioners and replacements (fixtures/parse/make_fixtures.sh) ------
@pytest.fixture(scope="module")
def failed_apply() -> ApplyTracker:
    return ApplyTracker(load_stream(REAL_FAILED))


def test_real_failed_provisioner(failed_apply: ApplyTracker) -> None:
    bad = failed_apply.outcome("terraform_data.bad[0]")
    assert (bad.status, bad.actions, bad.planned_action) == (OutcomeStatus.FAILED, ("create",), "create")
    (error,) = bad.errors
    assert error.summary == "local-exec provisioner error"
    assert error.detail.startswith("Error running command 'echo about to fail; exit 3': exit status 3.")
    assert (error.address, error.filename) == ("terraform_data.bad[0]", "main.tf")


def test_real_dependent_of_failure_was_not_attempted(failed_apply: ApplyTracker) -> None:
    after = failed_apply.outcome("terraform_data.after_bad[0]")
    assert (after.status, after.actions, after.planned_action) == (OutcomeStatus.NOT_ATTEMPTED, (), "create")


def test_real_replacements_in_both_orders_succeed(failed_apply: ApplyTracker) -> None:
    swap = failed_apply.outcome("terraform_data.swap")
    cbd = failed_apply.outcome("terraform_data.cbd")
    assert (swap.status, swap.actions, swap.planned_action) == (OutcomeStatus.SUCCEEDED, ("delete", "create"), "replace")
    assert (cbd.status, cbd.actions) == (OutcomeStatus.SUCCEEDED, ("create", "delete"))
    assert swap.id_key == "id" and swap.id_value


def test_real_replace_whose_delete_fails_never_creates(failed_apply: ApplyTracker) -> None:
    stuck = failed_apply.outcome("terraform_data.stuck")
    assert (stuck.status, stuck.actions) == (OutcomeStatus.FAILED, ("delete",))
    assert [d.summary for d in stuck.errors] == ["local-exec provisioner error"]
    assert "cannot destroy" in stuck.errors[0].detail


def test_real_untouched_and_module_resources(failed_apply: ApplyTracker) -> None:
    assert failed_apply.outcome("terraform_data.keep").status is OutcomeStatus.NOT_ATTEMPTED
    inner = failed_apply.outcome('module.child["x"].terraform_data.inner["a"]')
    assert (inner.status, inner.actions) == (OutcomeStatus.SUCCEEDED, ("update",))
    assert failed_apply.errors_without_address == ()
    assert len(failed_apply.diagnostics) == 2


def test_real_stream_cut_mid_operation_reports_started() -> None:
    lines = REAL_FAILED.read_text().splitlines()
    cut = next(i for i, line in enumerate(lines)
               if '"type":"apply_start"' in line and '"addr":"terraform_data.swap"' in line and '"create"' in line)
    tracker = ApplyTracker(parse_stream("\n".join(lines[:cut + 1])))
    swap = tracker.outcome("terraform_data.swap")
    assert (swap.status, swap.actions) == (OutcomeStatus.STARTED, ("delete", "create"))


def test_single_replace_operation_is_handled_like_two() -> None:
    hook = {"resource": {"addr": "null_resource.r"}, "action": "replace"}
    lines = [json.dumps({"type": "apply_start", "@level": "info", "hook": hook}),
             json.dumps({"type": "apply_complete", "@level": "info", "hook": {**hook, "elapsed_seconds": 2}})]
    outcome = ApplyTracker(parse_stream("\n".join(lines))).outcome("null_resource.r")
    assert (outcome.status, outcome.actions, outcome.elapsed_seconds) == (OutcomeStatus.SUCCEEDED, ("replace",), 2.0)


def test_provisioner_error_with_on_failure_continue_does_not_fail_the_resource() -> None:
    addr = {"resource": {"addr": "null_resource.r"}}
    lines = [{"type": "apply_start", "hook": {**addr, "action": "create"}},
             {"type": "provision_errored", "hook": {**addr, "provisioner": "local-exec"}},
             {"type": "apply_complete", "hook": {**addr, "action": "create"}}]
    outcome = ApplyTracker(parse_stream("\n".join(json.dumps({"@level": "info", **m}) for m in lines))).outcome(
        "null_resource.r")
    assert (outcome.status, outcome.provisioner_errors) == (OutcomeStatus.SUCCEEDED, ("local-exec",))


def test_real_successful_apply_summary() -> None:
    tracker = ApplyTracker(load_stream(REAL_CREATE))
    summary = tracker.change_summary
    assert summary is not None and (summary.operation, summary.add, summary.change, summary.remove) == ("apply", 8, 0, 0)
    outcomes = tracker.outcomes()
    assert len(outcomes) == 8
    assert {o.status for o in outcomes.values()} == {OutcomeStatus.SUCCEEDED}
    assert tracker.terraform_version == "1.11.4"


def test_json_array_of_non_messages_is_a_stream_error() -> None:
    with pytest.raises(StreamError, match="it looks like a JSON array"):
        parse_stream('[{"a": 1}, {"b": 2}]', source="x.json")


@pytest.mark.parametrize(("severity", "summary", "address", "context", "again"), [
    ("warning", "Check block assertion failed", None, 'check "c"', True),
    ("warning", "Check block assertion known after apply", None, 'check "c"', True),
    ("warning", "Error message refers to ephemeral values", None, 'check "c"', True),
    ("warning", "Unable to find remote state", "data.terraform_remote_state.gone", 'check "c"', True),
    ("warning", "Unable to find remote state", "module.m.data.terraform_remote_state.gone", 'check "c"', True),
    # terraform 1.11 attaches no check rule to this one: `terraform apply` shows the plan's too
    ("warning", "Error message refers to sensitive values", None, 'check "c"', False),
    ("warning", "Unable to find remote state", "data.terraform_remote_state.gone", 'data "x" "y"', False),
    ("warning", "Check block assertion failed", None, None, False),
    ("error", "Invalid condition result", None, 'check "c"', False),  # the plan fails: no apply repeats it
])
def test_check_block_results_are_told_by_where_they_come_from(severity: str, summary: str, address: str | None,
                                                              context: str | None, again: bool) -> None:
    diag = Diagnostic(severity=severity, summary=summary, detail="", address=address, filename="main.tf", line=1,
                      context=context)
    assert diag.checked_again is again
