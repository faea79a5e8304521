"""tfaudit.run.outcomes: per-phase outcomes checked against the state after apply.

The regression fixtures are terraform 1.11.4's own output: tests/data/outcomes/tf1.11.4-half-done-replace.*
(the bug where a replace destroyed and never re-created was recorded as succeeded) and the parse
fixtures' replace-and-fail run (replace in both orders, a failed destroy, a never-started create).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tfaudit import records
from tfaudit.parse.events import ApplyTracker, event_from_message, load_stream
from tfaudit.parse.plan import ResourceChange, load_plan, plan_checks, resource_change_from_json
from tfaudit.parse.state import State, load_state, parse_state
from tfaudit.redact import Redactor
from tfaudit.run.outcomes import counts, failed_checks, phase_actions, resolve

ROOT = Path(__file__).resolve().parents[2]
HALF = ROOT / "tests" / "data" / "outcomes" / "tf1.11.4-half-done-replace"
PARSE = ROOT / "fixtures" / "parse" / "tf1.11.4-"


def _recorded(plan_path: Path) -> list[ResourceChange]:
    return [c for c in load_plan(plan_path).resource_changes if records.is_recorded_change(c)]


def _by_address(changes: list[ResourceChange], outcomes: list[records.Outcome]) -> dict[str, records.Outcome]:
    return {c.address: o for c, o in zip(changes, outcomes)}


def _phases(o: records.Outcome) -> list[tuple[str, str]]:
    return [(p.action, str(p.status)) for p in o.phases]


# --- real terraform runs ---------------------------------------------------------------------
@pytest.fixture(scope="module")
def half() -> tuple[list[ResourceChange], dict[str, records.Outcome], ApplyTracker, State | None]:
    changes = _recorded(Path(f"{HALF}.plan.json"))
    tracker = ApplyTracker(load_stream(f"{HALF}.apply.jsonl"))
    state = load_state(f"{HALF}.tfstate")
    outcomes = resolve(changes, tracker, exit_code=1, interrupted=False, state_after=state)
    return changes, _by_address(changes, outcomes), tracker, state


def test_half_done_replace_is_not_succeeded(half: Any) -> None:
    _, out, _, _ = half
    b = out["terraform_data.b"]
    assert b.status == "incomplete"
    assert _phases(b) == [("delete", "succeeded"), ("create", "not_attempted")]
    assert b.error is not None and b.error["summary"] == "delete done, create never started"
    assert {"source": "state", "detail": "no object at terraform_data.b"} in [e.as_dict() for e in b.evidence]
    assert b.after is None and b.after_source == "state"  # destroyed: nothing to show as the result
    dep = out["terraform_data.dep"]
    assert dep.status == "failed" and _phases(dep) == [("delete", "succeeded"), ("create", "failed")]
    assert dep.error is not None and dep.error["summary"] == "local-exec provisioner error"
    assert any(e.detail == "terraform_data.dep is there, tainted" for e in dep.evidence)


def test_failed_postcondition_is_tied_to_its_resource(half: Any) -> None:
    _, out, _, _ = half
    guarded = out["terraform_data.guarded"]
    # the update itself completed, the postcondition after it failed: the resource failed
    assert _phases(guarded) == [("update", "succeeded")]
    assert guarded.status == "failed"
    assert guarded.error == {"summary": "Resource postcondition failed", "detail": "guarded output must be fine"}
    assert guarded.after is not None and guarded.after["output"] == "bad"  # the real value, from the state


def test_failed_checks_come_from_the_state_and_the_stream(half: Any) -> None:
    changes, _, tracker, state = half
    plan = load_plan(f"{HALF}.plan.json")
    found = {c["address"]: c for c in failed_checks(plan_checks(plan), state, tracker)}
    assert found["check.gen_is_small"]["problems"] == ["check_fail is set, so this check fails"]
    assert found["terraform_data.guarded"]["kind"] == "resource"
    # without a state, the plan's verdict and the stream's warning still name the failing check block
    again = {c["address"] for c in failed_checks(plan_checks(plan), None, tracker)}
    assert "check.gen_is_small" in again


def test_replace_in_both_orders_and_a_failed_destroy() -> None:
    changes = _recorded(Path(f"{PARSE}replace-and-fail.plan.json"))
    tracker = ApplyTracker(load_stream(f"{PARSE}replace-and-fail.apply.jsonl"))
    state = load_state(f"{PARSE}after-failed-apply.tfstate")
    out = _by_address(changes, resolve(changes, tracker, exit_code=1, interrupted=False, state_after=state))
    assert _phases(out["terraform_data.cbd"]) == [("create", "succeeded"), ("delete", "succeeded")]
    assert out["terraform_data.cbd"].status == "succeeded"
    assert _phases(out["terraform_data.swap"]) == [("delete", "succeeded"), ("create", "succeeded")]
    assert _phases(out["terraform_data.stuck"]) == [("delete", "failed"), ("create", "not_attempted")]
    assert out["terraform_data.stuck"].status == "failed"
    assert out["terraform_data.after_bad[0]"].status == "not_attempted"
    assert out["terraform_data.bad[0]"].status == "failed"
    swap_id = next(r.attributes for r in state.resources if r.address == "terraform_data.swap")["id"]  # type: ignore[index, union-attr]
    assert out["terraform_data.swap"].after is not None and out["terraform_data.swap"].after["id"] == swap_id
    assert counts(out.values())["succeeded"] == 5


# --- the state has the last word --------------------------------------------------------------
def _change(address: str, actions: list[str], **extra: Any) -> ResourceChange:
    kind, name = address.split(".")[-2:]
    return resource_change_from_json({
        "address": address, "mode": "managed", "type": kind, "name": name.split("[")[0],
        "provider_name": "terraform.io/builtin/terraform",
        "change": {"actions": actions, "before": None, "after": {"input": "x"}, "after_unknown": {"id": True},
                   "before_sensitive": False, "after_sensitive": {}, **extra.pop("change", {})},
        **extra}, "test")


def _hook(kind: str, address: str, action: str, **hook: Any) -> dict[str, Any]:
    return {"type": kind, "@level": "info", "@message": "", "hook": {"resource": {"addr": address}, "action": action, **hook}}


def _tracker(*messages: dict[str, Any]) -> ApplyTracker:
    return ApplyTracker(event_from_message(m) for m in messages)


def _state(*instances: tuple[str, dict[str, Any]], checks: list[dict[str, Any]] | None = None) -> State:
    resources = []
    for address, inst in instances:
        kind, name = address.split(".")
        resources.append({"mode": "managed", "type": kind, "name": name, "provider": "p", "instances": [inst]})
    state = parse_state(json.dumps({"version": 4, "serial": 3, "lineage": "l", "resources": resources,
                                    "check_results": checks}))
    assert state is not None
    return state


def test_events_say_created_but_the_state_has_no_object_gives_unknown() -> None:
    ch = _change("terraform_data.x", ["create"])
    tracker = _tracker(_hook("apply_start", "terraform_data.x", "create"),
                       _hook("apply_complete", "terraform_data.x", "create", id_value="abc"))
    [o] = resolve([ch], tracker, exit_code=0, interrupted=False, state_after=_state())
    assert o.status == "unknown"
    assert o.error is not None and o.error["summary"] == "the apply events and the state after apply disagree"
    assert any(e.detail == "contradicts the events: the object is not there" for e in o.evidence)


def test_a_tainted_object_is_not_a_success() -> None:
    ch = _change("terraform_data.x", ["create"])
    tracker = _tracker(_hook("apply_start", "terraform_data.x", "create"), _hook("apply_complete", "terraform_data.x", "create"))
    state = _state(("terraform_data.x", {"status": "tainted", "attributes": {"id": "i-1"}}))
    [o] = resolve([ch], tracker, exit_code=0, interrupted=False, state_after=state)
    assert o.status == "unknown"


def test_no_readable_state_confirms_nothing() -> None:
    ch = _change("terraform_data.x", ["create"])
    tracker = _tracker(_hook("apply_start", "terraform_data.x", "create"), _hook("apply_complete", "terraform_data.x", "create"))
    [o] = resolve([ch], tracker, exit_code=0, interrupted=False, state_after=None)
    assert o.status == "unknown" and o.after_source == "plan"
    assert any(e.detail == "the state after apply could not be read" for e in o.evidence)


def test_interrupted_phase_and_a_delete_that_still_happened() -> None:
    create = _change("terraform_data.a", ["create"])
    delete = _change("terraform_data.d", ["delete"], change={"before": {"id": "old"}, "after": None, "after_unknown": {}})
    tracker = _tracker(_hook("apply_start", "terraform_data.a", "create"))
    state = _state(("terraform_data.a", {"status": "tainted", "attributes": {"id": "half"}}))
    a, d = resolve([create, delete], tracker, exit_code=130, interrupted=True, state_after=state)
    assert a.status == "interrupted" and _phases(a) == [("create", "interrupted")]
    # no delete was seen, yet the object is gone: the record says it cannot tell
    assert d.status == "unknown"


def test_delete_succeeded_only_when_the_object_is_gone() -> None:
    delete = _change("terraform_data.d", ["delete"], change={"before": {"id": "old"}, "after": None, "after_unknown": {}})
    tracker = _tracker(_hook("apply_start", "terraform_data.d", "delete"), _hook("apply_complete", "terraform_data.d", "delete"))
    [gone] = resolve([delete], tracker, exit_code=0, interrupted=False, state_after=_state())
    assert gone.status == "succeeded" and gone.after is None
    [there] = resolve([delete], tracker, exit_code=0, interrupted=False,
                      state_after=_state(("terraform_data.d", {"attributes": {"id": "old"}})))
    assert there.status == "unknown"


def test_hookless_forget_move_and_import_are_read_from_the_state() -> None:
    forget = _change("terraform_data.f", ["forget"])
    moved = _change("terraform_data.new", ["no-op"], previous_address="terraform_data.old")
    imported = _change("terraform_data.imp", ["no-op"], change={"importing": {"id": "abc"}})
    assert phase_actions(moved) == ("move",) and phase_actions(imported) == ("import",)
    good = _state(("terraform_data.new", {"attributes": {"id": "n"}}), ("terraform_data.imp", {"attributes": {"id": "abc"}}))
    f, m, i = resolve([forget, moved, imported], _tracker(), exit_code=0, interrupted=False, state_after=good)
    assert (f.status, m.status, i.status) == ("succeeded", "succeeded", "succeeded")
    bad = _state(("terraform_data.f", {"attributes": {"id": "f"}}), ("terraform_data.old", {"attributes": {"id": "n"}}))
    f, m, i = resolve([forget, moved, imported], _tracker(), exit_code=0, interrupted=False, state_after=bad)
    assert (f.status, m.status, i.status) == ("unknown", "unknown", "unknown")
    f, m, i = resolve([forget, moved, imported], _tracker(), exit_code=1, interrupted=False, state_after=bad)
    assert (f.status, m.status, i.status) == ("not_attempted", "not_attempted", "not_attempted")


def _postcondition(address_context: str) -> dict[str, Any]:
    return {"type": "diagnostic", "@level": "error", "@message": "Error: Resource postcondition failed",
            "diagnostic": {"severity": "error", "summary": "Resource postcondition failed", "detail": "must be fine",
                           "range": {"filename": "main.tf", "start": {"line": 9}},
                           "snippet": {"context": address_context}}}


def test_a_condition_on_one_of_several_instances_is_settled_by_the_state_checks() -> None:
    chs = [_change("terraform_data.g[0]", ["update"]), _change("terraform_data.g[1]", ["update"])]
    msgs = [m for a in ("terraform_data.g[0]", "terraform_data.g[1]")
            for m in (_hook("apply_start", a, "update"), _hook("apply_complete", a, "update"))]
    tracker = _tracker(*msgs, _postcondition('resource "terraform_data" "g"'))
    raw = {"version": 4, "serial": 1, "lineage": "l", "resources": [
        {"mode": "managed", "type": "terraform_data", "name": "g", "provider": "p",
         "instances": [{"index_key": 0, "attributes": {"id": "0"}}, {"index_key": 1, "attributes": {"id": "1"}}]}]}
    state = parse_state(json.dumps(raw))
    g0, g1 = resolve(chs, tracker, exit_code=1, interrupted=False, state_after=state)
    assert g0.status == g1.status == "unknown"  # terraform does not say which instance
    raw["check_results"] = [{"object_kind": "resource", "config_addr": "terraform_data.g", "status": "fail", "objects": [
        {"object_addr": "terraform_data.g[0]", "status": "pass"},
        {"object_addr": "terraform_data.g[1]", "status": "fail", "failure_messages": ["must be fine"]}]}]
    g0, g1 = resolve(chs, tracker, exit_code=1, interrupted=False, state_after=parse_state(json.dumps(raw)))
    assert (g0.status, g1.status) == ("succeeded", "failed")


# --- real after-values in the record -----------------------------------------------------------
def test_record_carries_the_state_object_redacted_and_the_plan_where_it_differs() -> None:
    ch = resource_change_from_json({
        "address": "terraform_data.s", "mode": "managed", "type": "terraform_data", "name": "s",
        "provider_name": "p",
        "change": {"actions": ["create"], "before": None,
                   "after": {"input": {"password": "hunter2-planted", "region": "eu-west-1"}, "label": "planned"},
                   "after_unknown": {"id": True, "output": True},
                   "before_sensitive": False, "after_sensitive": {"input": {"password": True}}}}, "test")
    state = _state(("terraform_data.s", {
        "attributes": {"id": "real-id-123", "label": "normalised",
                       "input": {"value": {"password": "hunter2-planted", "region": "eu-west-1"},
                                 "type": ["object", {"password": "string", "region": "string"}]},
                       "output": {"value": "secret-output-value", "type": "string"}},
        "sensitive_attributes": [[{"type": "get_attr", "value": "output"}]]}))
    tracker = _tracker(_hook("apply_start", "terraform_data.s", "create"), _hook("apply_complete", "terraform_data.s", "create"))
    [o] = resolve([ch], tracker, exit_code=0, interrupted=False, state_after=state)
    redactor = Redactor()
    records.learn_plan_secrets(load_plan_like(ch), redactor)
    body = records.resource_body(ch, o, redactor)
    assert body["status"] == "succeeded" and body["after_source"] == "state"
    assert body["after"]["id"] == "real-id-123"
    assert body["after"]["input"] == {"password": "(sensitive)", "region": "eu-west-1"}
    assert body["after"]["output"] == "(sensitive)"  # the state's sensitive_attributes
    assert body["planned_after"] == {"label": "planned"}  # what the plan said, where it came out otherwise
    text = json.dumps(body)
    assert "hunter2-planted" not in text and "secret-output-value" not in text
    assert body["phases"] == [{"action": "create", "status": "succeeded", "elapsed_seconds": None}]


def load_plan_like(ch: ResourceChange) -> Any:
    """learn_plan_secrets reads resource_changes, resource_drift and raw."""
    from types import SimpleNamespace

    return SimpleNamespace(resource_changes=(ch,), resource_drift=(), raw={}, sensitive_variables=frozenset())
