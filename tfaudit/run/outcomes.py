"""What happened to each planned resource change: phases from the apply events, checked against the state.

Pure: the planned changes, the apply stream (as an ApplyTracker), terraform's exit code, whether a
signal stopped it and the state after apply go in; one `records.Outcome` per change comes out.

A change has phases in the order terraform runs them: a replace is delete then create, or create then
delete with create_before_destroy; moves and imports come first and emit no hooks, nor does forget.
Hooked phases take their status from the stream; hookless ones from the state. A resource is
`succeeded` only when every phase succeeded and the state after agrees (the object is there and not
tainted after a create, update or replace; gone after a delete or forget). Where the stream and the
state disagree the status is `unknown` and the evidence says why: a record never claims a success
the state contradicts.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from tfaudit.parse.events import ApplyTracker, Diagnostic, Operation
from tfaudit.parse.events import ResourceOutcome as StreamOutcome
from tfaudit.parse.plan import ResourceChange
from tfaudit.parse.state import State, StateResource
from tfaudit.records import Evidence, Outcome, Phase, Status

_HOOKED = frozenset({"create", "update", "delete"})
_CONTEXT = re.compile(r'^(resource|data) "([^"]+)" "([^"]+)"$')
# A top-level attribute of a dynamic type is stored as {"value": ..., "type": <cty type>}.
_CTY_PRIMITIVES = frozenset({"string", "number", "bool", "dynamic"})
_CTY_KINDS = frozenset({"list", "set", "map", "object", "tuple"})
_SAYS = {Status.SUCCEEDED: "completed", Status.FAILED: "errored", Status.INTERRUPTED: "was interrupted",
         Status.NOT_ATTEMPTED: "never started", Status.UNKNOWN: "cannot be told"}


def phase_actions(ch: ResourceChange) -> tuple[str, ...]:
    """The phases of a planned change, in the order terraform runs them."""
    pre: list[str] = []
    if ch.previous_address and ch.previous_address != ch.address:
        pre.append("move")
    if ch.importing is not None:
        pre.append("import")
    acts = tuple(a for a in ch.actions if a not in ("no-op", "read"))
    return (*pre, *acts)


@dataclass(frozen=True)
class _Facts:
    """What the state after apply holds at one address (read is False: no state could be read)."""

    read: bool
    current: StateResource | None = None
    deposed: tuple[str, ...] = ()
    previous_present: bool = False

    def describe(self, address: str) -> str:
        if not self.read:
            return "the state after apply could not be read"
        if self.current is None:
            text = f"no object at {address}"
        else:
            text = f"{address} is there" + (", tainted" if self.current.tainted else "")
        if self.deposed:
            text += f"; deposed object(s) {', '.join(self.deposed)} remain"
        return text


def _index(state: State | None) -> dict[str, list[StateResource]] | None:
    """The state's objects by address (current first), or None when no state was read."""
    if state is None:
        return None
    found: dict[str, list[StateResource]] = {}
    for obj in sorted(state.resources, key=lambda r: r.deposed is not None):
        found.setdefault(obj.address, []).append(obj)
    return found


def _facts(ch: ResourceChange, objects: Mapping[str, list[StateResource]] | None) -> _Facts:
    if objects is None:
        return _Facts(read=False)
    objs = objects.get(ch.address, [])
    current = next((o for o in objs if o.deposed is None), None)
    prev = bool(ch.previous_address and ch.previous_address != ch.address
                and any(o.deposed is None for o in objects.get(ch.previous_address, [])))
    return _Facts(True, current, tuple(o.deposed for o in objs if o.deposed), prev)


def _hookless(action: str, ch: ResourceChange, facts: _Facts, exit_code: int) -> Status:
    """import, move and forget leave no trace in the stream: the state tells whether they happened."""
    if not facts.read:
        return Status.UNKNOWN
    if action == "import":
        done = facts.current is not None
    elif action == "move":
        done = facts.current is not None and not facts.previous_present
    elif ch.deposed:  # forget of a deposed object
        done = ch.deposed not in facts.deposed
    elif "create" in ch.actions:  # create then forget the old object
        done = not facts.deposed
    else:
        done = facts.current is None
    if done:
        return Status.SUCCEEDED
    return Status.UNKNOWN if exit_code == 0 else Status.NOT_ATTEMPTED


def _op_status(op: Operation, interrupted: bool) -> Status:
    if op.errored:
        return Status.FAILED
    if op.done:
        return Status.SUCCEEDED
    return Status.INTERRUPTED if interrupted else Status.FAILED


class _OpQueue:
    """The operations the stream shows per address, handed out to phases in order (a deposed
    object's delete and the current object's change share one address)."""

    def __init__(self, tracker: ApplyTracker) -> None:
        self._tracker = tracker
        self._seen: dict[str, StreamOutcome] = {}
        self._left: dict[str, list[Operation]] = {}

    def outcome(self, address: str) -> StreamOutcome:
        found = self._seen.get(address)
        if found is None:
            found = self._seen[address] = self._tracker.outcome(address)
            self._left[address] = list(found.operations)
        return found

    def take(self, address: str, action: str) -> Operation | None:
        self.outcome(address)
        left = self._left[address]
        for i, op in enumerate(left):
            if op.action in (action, "replace"):
                return left.pop(i) if op.action == action else op
        return None


def _phases(ch: ResourceChange, ops: _OpQueue, facts: _Facts, exit_code: int,
            interrupted: bool) -> tuple[Phase, ...]:
    phases: list[Phase] = []
    for action in phase_actions(ch):
        if action not in _HOOKED:
            phases.append(Phase(action, _hookless(action, ch, facts, exit_code)))
            continue
        op = ops.take(ch.address, action)
        if op is None:
            phases.append(Phase(action, Status.NOT_ATTEMPTED))
        else:
            phases.append(Phase(action, _op_status(op, interrupted), op.elapsed_seconds))
    return tuple(phases)


def _combined(phases: Sequence[Phase], failed_by_diagnostic: bool) -> Status:
    statuses = {p.status for p in phases}
    if failed_by_diagnostic or Status.FAILED in statuses:
        return Status.FAILED
    for status in (Status.INTERRUPTED, Status.UNKNOWN):
        if status in statuses:
            return status
    if statuses <= {Status.SUCCEEDED}:
        return Status.SUCCEEDED
    if statuses == {Status.NOT_ATTEMPTED}:
        return Status.NOT_ATTEMPTED
    return Status.INCOMPLETE


def _contradiction(ch: ResourceChange, status: Status, facts: _Facts) -> str | None:
    """Why the state after apply cannot be the result of what the events say (None: it can)."""
    acts = ch.actions
    if not facts.read:
        return "nothing confirms it" if status is Status.SUCCEEDED else None
    present, tainted = facts.current is not None, bool(facts.current and facts.current.tainted)
    if status is Status.SUCCEEDED:
        if ch.deposed and acts in (("delete",), ("forget",)):
            return f"deposed object {ch.deposed} is still there" if ch.deposed in facts.deposed else None
        if acts in (("delete",), ("forget",)):
            return "the object is still there" if present else None
        if not present:
            return "the object is not there"
        return "the object is tainted" if tainted else None
    if status is Status.NOT_ATTEMPTED and not ch.deposed:
        if acts == ("create",) and present:
            return "an object is there although no create started"
        if ("delete" in acts or acts == ("forget",)) and not present:
            return "the object is gone although no delete started"
    return None


def _diagnostic_targets(changes: Sequence[ResourceChange], diagnostics: Iterable[Diagnostic]
                        ) -> tuple[dict[str, list[Diagnostic]], dict[str, list[Diagnostic]]]:
    """Errors without an address (a failed pre- or postcondition) tied to the resource their snippet
    names: (one instance matches, several could be meant)."""
    sure: dict[str, list[Diagnostic]] = {}
    maybe: dict[str, list[Diagnostic]] = {}
    for d in diagnostics:
        m = _CONTEXT.match(d.context or "") if d.is_error and not d.address else None
        if m is None:
            continue
        mode = "managed" if m.group(1) == "resource" else "data"
        # the root module's files sit in the working directory; a module's in a folder of their own
        root = None if d.filename is None else "/" not in d.filename.replace("\\", "/")
        found = [ch.address for ch in changes if (ch.mode, ch.type, ch.name) == (mode, m.group(2), m.group(3))
                 and (root is None or (ch.module is None) == root)]
        for address in dict.fromkeys(found):
            (sure if len(found) == 1 else maybe).setdefault(address, []).append(d)
    return sure, maybe


def unwrap_dynamic(attrs: Mapping[str, Any], planned: Any = None) -> dict[str, Any]:
    """The state's attributes with dynamically typed ones ({"value": v, "type": t}) read as v,
    unless the plan shows that very shape as the value."""
    out: dict[str, Any] = {}
    for k, v in attrs.items():
        want = planned.get(k) if isinstance(planned, Mapping) else None
        if (isinstance(v, Mapping) and set(v) == {"value", "type"} and _is_cty_type(v["type"])
                and not (isinstance(want, Mapping) and set(want) == {"value", "type"})):
            out[k] = v["value"]
        else:
            out[k] = v
    return out


def _is_cty_type(t: Any) -> bool:
    if isinstance(t, str):
        return t in _CTY_PRIMITIVES
    return isinstance(t, list) and bool(t) and t[0] in _CTY_KINDS


def _evidence(ch: ResourceChange, phases: Sequence[Phase], facts: _Facts, diags: Sequence[Diagnostic],
              maybe: Sequence[Diagnostic], exit_code: int, interrupted: bool) -> list[Evidence]:
    ev = [Evidence("events" if p.action in _HOOKED else "state", f"{p.action} {_SAYS.get(p.status, p.status)}")
          for p in phases]
    ev += [Evidence("diagnostic", f"{d.summary}: {d.detail}".strip(": ")) for d in diags]
    ev += [Evidence("diagnostic", f"{d.summary} on one of several instances: {d.detail}".strip(": "))
           for d in maybe]
    ev.append(Evidence("state", facts.describe(ch.address)))
    if interrupted:
        ev.append(Evidence("exit_code", f"terraform was interrupted (exit {exit_code})"))
    elif exit_code != 0:
        ev.append(Evidence("exit_code", f"terraform exited {exit_code}"))
    return ev


def _error(status: Status, phases: Sequence[Phase], diags: Sequence[Diagnostic], why: str | None,
           facts: _Facts, address: str) -> dict[str, str] | None:
    if status is Status.FAILED:
        if diags:
            return {"summary": diags[0].summary, "detail": diags[0].detail}
        return {"summary": "terraform stopped before this resource finished", "detail": ""}
    if status is Status.INCOMPLETE:
        done = [p.action for p in phases if p.status is Status.SUCCEEDED]
        left = [p.action for p in phases if p.status is not Status.SUCCEEDED]
        return {"summary": f"{' and '.join(done)} done, {' and '.join(left)} never started",
                "detail": f"terraform stopped part-way through this change; state after: {facts.describe(address)}"}
    if status is Status.UNKNOWN:
        return {"summary": "the apply events and the state after apply disagree",
                "detail": why or facts.describe(address)}
    return None


def resolve_one(ch: ResourceChange, phases: tuple[Phase, ...], facts: _Facts, diags: Sequence[Diagnostic],
                maybe: Sequence[Diagnostic], exit_code: int, interrupted: bool) -> Outcome:
    status = _combined(phases, bool(diags))
    why = _contradiction(ch, status, facts)
    if why is None and maybe and status is Status.SUCCEEDED:
        why = "a condition failed on an instance of this resource, and terraform does not say which"
    if why is not None:
        status = Status.UNKNOWN
    evidence = _evidence(ch, phases, facts, diags, maybe, exit_code, interrupted)
    if why is not None and why != facts.describe(ch.address):
        evidence.append(Evidence("state", f"contradicts the events: {why}"))
    elapsed = [p.elapsed_seconds for p in phases if p.elapsed_seconds is not None]
    current = None if ch.deposed else facts.current
    after = unwrap_dynamic(current.attributes, ch.after) if current and current.attributes is not None else None
    return Outcome(
        status=str(status), error=_error(status, phases, diags, why, facts, ch.address),
        elapsed_seconds=sum(elapsed) if elapsed else None, phases=phases, evidence=tuple(evidence),
        after=after, after_sensitive_paths=current.sensitive_paths if current and after is not None else (),
        after_source="state" if facts.read else "plan",
    )


def _settle_by_state(sure: dict[str, list[Diagnostic]], maybe: dict[str, list[Diagnostic]],
                     state: State | None) -> None:
    """The state's check results name the instance whose condition failed: settle the doubtful ones."""
    verdict = {c["address"]: c["status"] for c in (state.checks if state else ()) if c["kind"] == "resource"}
    for address in list(maybe):
        if verdict.get(address) in ("fail", "error"):
            sure.setdefault(address, []).extend(maybe.pop(address))
        elif verdict.get(address) == "pass":
            del maybe[address]


def resolve(changes: Sequence[ResourceChange], tracker: ApplyTracker, *, exit_code: int, interrupted: bool,
            state_after: State | None) -> list[Outcome]:
    """One outcome per planned change, in the same order."""
    return [o for _, o in resolve_each(changes, tracker, exit_code=exit_code, interrupted=interrupted,
                                       state_after=state_after)]


def resolve_each(changes: Sequence[ResourceChange], tracker: ApplyTracker, *, exit_code: int, interrupted: bool,
                 state_after: State | None) -> Iterator[tuple[ResourceChange, Outcome]]:
    """Each planned change with its outcome, in order, one at a time (`changes` is read once, plus
    once for each error whose snippet names a resource but not its instance)."""
    ops = _OpQueue(tracker)
    sure, maybe = _diagnostic_targets(changes, tracker.diagnostics)
    _settle_by_state(sure, maybe, state_after)
    objects = _index(state_after)
    for ch in changes:
        facts = _facts(ch, objects)
        phases = _phases(ch, ops, facts, exit_code, interrupted)
        named = [d for d in ops.outcome(ch.address).errors if not ch.deposed or d.address == ch.address]
        diags = [*named, *sure.get(ch.address, [])]
        yield ch, resolve_one(ch, phases, facts, diags, maybe.get(ch.address, []), exit_code, interrupted)


_CHECK_CONTEXT = re.compile(r'^check "([^"]+)"$')


def failed_checks(planned: Sequence[Mapping[str, Any]], state_after: State | None,
                  tracker: ApplyTracker) -> list[dict[str, Any]]:
    """Checks and conditions failing after apply: the state's results when it has them (the plan's
    otherwise), and the check blocks the apply stream warned about."""
    source = state_after.checks if state_after is not None and state_after.checks else planned
    out: dict[str, dict[str, Any]] = {
        str(c["address"]): {"address": str(c["address"]), "kind": str(c["kind"]), "status": str(c["status"]),
                            "problems": [str(m) for m in c["problems"]]}
        for c in source if c["status"] in ("fail", "error")}
    for d in tracker.diagnostics:
        m = _CHECK_CONTEXT.match(d.context or "")
        if m is None or d.is_error or "/" in (d.filename or "").replace("\\", "/"):
            continue  # a module's check block: its instance address is not in the diagnostic
        out.setdefault(f"check.{m.group(1)}", {"address": f"check.{m.group(1)}", "kind": "check",
                                                "status": "fail", "problems": [d.detail]})
    return list(out.values())


def counts(outcomes: Iterable[Outcome]) -> dict[str, int]:
    """Resources per status, for run.finished (the three classic keys always present)."""
    found: dict[str, int] = {"succeeded": 0, "failed": 0, "not_attempted": 0}
    for o in outcomes:
        found[str(o.status)] = found.get(str(o.status), 0) + 1
    return found


__all__ = ["counts", "failed_checks", "phase_actions", "resolve", "resolve_each", "resolve_one", "unwrap_dynamic"]
