"""Audit records: what one run of a wrapped command writes to the ledger.

Builders here turn parsed terraform data (plan, apply events, state) into JSON-ready
record bodies, already redacted. Chain and signature are added by the ledger on append;
the JSON Schema in `tfaudit/schema/` is the contract for the result.
"""

from __future__ import annotations

import re
import uuid
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from enum import StrEnum
from typing import Any, NewType

from tfaudit import __version__
from tfaudit.parse.plan import plan_checks
from tfaudit.redact import Redactor

class Severity(StrEnum):
    """How much a finding (and, for alert routing, a record) matters; ordered by rank."""

    INFO = "info"
    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"
    CRITICAL = "critical"

    @property
    def rank(self) -> int:
        return _SEVERITY_RANK[self]


_SEVERITY_RANK = {Severity.INFO: 0, Severity.LOW: 1, Severity.MEDIUM: 2, Severity.HIGH: 3, Severity.CRITICAL: 4}

RecordId = NewType("RecordId", str)
RunId = NewType("RunId", str)
SCHEMA = "tfaudit.record/v1"
MAX_CHANGED_PATHS = 500

_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]*$")


def new_id() -> str:
    return uuid.uuid4().hex


def now() -> str:
    """UTC, RFC 3339 with microseconds and a Z suffix."""
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@dataclass(frozen=True)
class RunInfo:
    id: RunId
    command: str
    args: tuple[str, ...]
    tool: str
    tool_version: str | None
    workspace: str
    working_dir: str
    plan_sha256: str | None = None
    plan_file: str | None = None
    started_at: str = field(default_factory=now)
    state_id: str | None = None  # the state's backend and location (tfaudit.run.outofband.state_identity)

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "command": self.command,
            "args": list(self.args),
            "tool": self.tool,
            "tool_version": self.tool_version,
            "workspace": self.workspace,
            "working_dir": self.working_dir,
            "plan_sha256": self.plan_sha256,
            "plan_file": self.plan_file,
            "started_at": self.started_at,
            "state_id": self.state_id,
        }


def base_record(rtype: str, run: RunInfo | Mapping[str, Any], actor: Mapping[str, Any], **body: Any) -> dict[str, Any]:
    """A record's common fields; `run` is the run's RunInfo, or its dict as recorded (recovery)."""
    return {
        "schema": SCHEMA,
        "id": new_id(),
        "type": rtype,
        "time": now(),
        "tfaudit_version": __version__,
        "run": run.as_dict() if isinstance(run, RunInfo) else dict(run),
        "actor": dict(actor),
        **body,
    }


# --- attribute paths ------------------------------------------------------------------------
def _join(prefix: str, key: str | int) -> str:
    if isinstance(key, int):
        return f"{prefix}[{key}]"
    if _IDENT.match(key):
        return f"{prefix}.{key}" if prefix else key
    escaped = key.replace("\\", "\\\\").replace('"', '\\"')
    return f'{prefix}["{escaped}"]'


def _leaves(value: Any, prefix: str, out: list[str]) -> None:
    if isinstance(value, Mapping) and value:
        for k, v in value.items():
            _leaves(v, _join(prefix, str(k)), out)
    elif isinstance(value, list) and value:
        for i, v in enumerate(value):
            _leaves(v, _join(prefix, i), out)
    elif value is not None and prefix:
        out.append(prefix)


def changed_paths(before: Any, after: Any, after_unknown: Any = None, prefix: str = "") -> list[str]:
    """Attribute paths whose value differs between before and after (unknown-after counts as changed)."""
    out: list[str] = []
    _diff(before, after, after_unknown, prefix, out)
    return out


def _diff(before: Any, after: Any, unknown: Any, prefix: str, out: list[str]) -> None:
    if unknown is True:
        if prefix:
            out.append(prefix)
        return
    if isinstance(before, Mapping) and isinstance(after, Mapping):
        keys = list(dict.fromkeys([*before.keys(), *after.keys(),
                                   *(unknown.keys() if isinstance(unknown, Mapping) else [])]))
        for k in keys:
            sub_u = unknown.get(k) if isinstance(unknown, Mapping) else None
            _diff(before.get(k), after.get(k), sub_u, _join(prefix, str(k)), out)
        return
    if isinstance(before, list) and isinstance(after, list) and len(before) == len(after):
        for i, (b, a) in enumerate(zip(before, after)):
            sub_u = unknown[i] if isinstance(unknown, list) and i < len(unknown) else None
            _diff(b, a, sub_u, _join(prefix, i), out)
        return
    if before != after:
        if before is None:
            _leaves(after, prefix, out)
            if isinstance(unknown, (Mapping, list)):
                _unknown_leaves(unknown, prefix, out)
        elif after is None:
            _leaves(before, prefix, out)
        elif prefix:
            out.append(prefix)
    elif isinstance(unknown, (Mapping, list)):
        _unknown_leaves(unknown, prefix, out)


def _unknown_leaves(unknown: Any, prefix: str, out: list[str]) -> None:
    if unknown is True:
        out.append(prefix)
    elif isinstance(unknown, Mapping):
        for k, v in unknown.items():
            _unknown_leaves(v, _join(prefix, str(k)), out)
    elif isinstance(unknown, list):
        for i, v in enumerate(unknown):
            _unknown_leaves(v, _join(prefix, i), out)


def _top_key(path: str) -> str:
    m = re.match(r'^([A-Za-z_][A-Za-z0-9_-]*)|^\["((?:[^"\\]|\\.)*)"\]', path)
    if not m:
        return path
    return m.group(1) if m.group(1) is not None else m.group(2).replace('\\"', '"').replace("\\\\", "\\")


def _sub(value: Any, key: str) -> Any:
    return value.get(key) if isinstance(value, Mapping) else None


# --- plan summaries -------------------------------------------------------------------------
def action_word(actions: Sequence[str]) -> str:
    acts = tuple(actions)
    if acts in (("delete", "create"), ("create", "delete")):
        return "replace"
    return acts[0] if len(acts) == 1 else "-".join(acts)


def change_word(ch: Any) -> str:
    """A change's action word (create, update, delete, replace, import, move, forget, ...)."""
    word = action_word(ch.actions)
    if word == "no-op" and getattr(ch, "importing", None):
        return "import"
    if word == "no-op" and getattr(ch, "previous_address", None):
        return "move"
    return word


def summarize_changes(changes: Iterable[Any]) -> dict[str, int]:
    """Counts per action word (create, update, delete, replace, import, move, forget, ...)."""
    counts = Counter(change_word(ch) for ch in changes)
    return dict(sorted(counts.items()))


def is_recorded_change(ch: Any) -> bool:
    """A resource gets a resource.changed record unless its plan does nothing to it."""
    acts = tuple(ch.actions)
    if acts == ("read",):
        return False
    if acts == ("no-op",):
        return bool(getattr(ch, "importing", None) or getattr(ch, "previous_address", None))
    return True


def check_body(check: Mapping[str, Any], redactor: Redactor) -> dict[str, Any]:
    """One check result ({"address", "kind", "status", "problems"}) with its messages scrubbed."""
    return {"address": str(check["address"]), "kind": str(check["kind"]), "status": str(check["status"]),
            "problems": [redactor.scrub(str(m)) for m in check["problems"]]}


def plan_body(plan: Any, plan_sha256: str | None, redactor: Redactor,
              recorded: Iterable[Any] | None = None) -> dict[str, Any]:
    """The run.started record's plan; `recorded`: the plan's changes that get a record, when known
    (read once, one at a time: they may be decoded on demand)."""
    changes = recorded if recorded is not None else (ch for ch in plan.resource_changes if is_recorded_change(ch))
    checks = [check_body(c, redactor) for c in plan_checks(plan)]
    counts: Counter[str] = Counter()
    entries: list[dict[str, Any]] = []
    for ch in changes:
        counts[change_word(ch)] += 1
        entries.append({"address": ch.address, "actions": list(ch.actions), "action_reason": ch.action_reason,
                        **({"previous_address": ch.previous_address} if ch.previous_address else {})})
    return {
        **({"checks": checks} if checks else {}),
        "sha256": plan_sha256,
        "format_version": plan.format_version,
        "errored": bool(plan.errored),
        "summary": dict(sorted(counts.items())),
        "changes": entries,
        "resource_drift": [
            {"address": d.address, "actions": list(d.actions),
             "changed_paths": changed_paths(d.before, d.after, d.after_unknown)[:MAX_CHANGED_PATHS]}
            for d in plan.resource_drift
        ],
    }


# --- resource.changed ---------------------------------------------------------------------
class Status(StrEnum):
    """What a resource's record says happened to it (and to each phase of its change)."""

    SUCCEEDED = "succeeded"  # every phase completed and the state after agrees
    FAILED = "failed"  # a phase errored, or an error (a condition, a provisioner) names the resource
    NOT_ATTEMPTED = "not_attempted"  # no phase started
    INTERRUPTED = "interrupted"  # a phase started and a signal stopped terraform before it finished
    INCOMPLETE = "incomplete"  # some phases completed, the rest never started (destroyed, not re-created)
    UNKNOWN = "unknown"  # the events and the state after disagree, or the state could not be read
    PLANNED = "planned"


@dataclass(frozen=True)
class Phase:
    """One step of a change: create, update, delete (a replace has two), import, move or forget."""

    action: str
    status: Status
    elapsed_seconds: float | None = None

    def as_dict(self) -> dict[str, Any]:
        return {"action": self.action, "status": str(self.status), "elapsed_seconds": self.elapsed_seconds}


@dataclass(frozen=True)
class Evidence:
    """A fact the status rests on: what the apply events, the state after, a diagnostic or the exit code said."""

    source: str  # events | state | diagnostic | exit_code
    detail: str

    def as_dict(self) -> dict[str, str]:
        return {"source": self.source, "detail": self.detail}


@dataclass(frozen=True)
class Outcome:
    status: str  # a Status value
    error: Mapping[str, str] | None = None
    elapsed_seconds: float | None = None
    phases: tuple[Phase, ...] = ()
    evidence: tuple[Evidence, ...] = ()
    # the object as it is in the state after apply (None: not there, or no state was read),
    # and the paths the state marks sensitive in it; after_source "state" once a state was read
    after: Mapping[str, Any] | None = None
    after_sensitive_paths: tuple[tuple[str | int, ...], ...] = ()
    after_source: str = "plan"


def learn_change_secrets(ch: Any, redactor: Redactor) -> None:
    """Teach the redactor the values one resource change (or drift entry) marks sensitive."""
    redactor.learn_masked(ch.before, ch.before_sensitive)
    redactor.learn_masked(ch.after, ch.after_sensitive)


def learn_plan_secrets(plan: Any, redactor: Redactor, *, changes: bool = True) -> None:
    """Teach the redactor every value terraform marks sensitive, before anything is rendered
    (changes=False: the resource changes were shown to learn_change_secrets as they were read)."""
    for ch in (*(plan.resource_changes if changes else ()), *plan.resource_drift):
        learn_change_secrets(ch, redactor)
    raw_vars = plan.raw.get("variables") if isinstance(plan.raw, Mapping) else None
    if isinstance(raw_vars, Mapping):
        for name in plan.sensitive_variables:
            var = raw_vars.get(name)
            if isinstance(var, Mapping):
                redactor.learn(var.get("value"))
    outs = plan.raw.get("output_changes") if isinstance(plan.raw, Mapping) else None
    if isinstance(outs, Mapping):
        for o in outs.values():
            if isinstance(o, Mapping):
                ch = o
                redactor.learn_masked(ch.get("before"), ch.get("before_sensitive"))
                redactor.learn_masked(ch.get("after"), ch.get("after_sensitive"))


def mask_from_paths(value: Any, paths: Iterable[Sequence[str | int]]) -> Any:
    """A terraform-style sensitivity mask (True where sensitive) over value, from attribute paths."""
    paths = [tuple(p) for p in paths]
    if not paths:
        return None
    if () in paths:
        return True
    if isinstance(value, Mapping):
        sub = {k: mask_from_paths(v, [p[1:] for p in paths if p[0] == k]) for k, v in value.items()}
        return {k: m for k, m in sub.items() if m is not None} or None
    if isinstance(value, list):
        masks = [mask_from_paths(v, [p[1:] for p in paths if p[0] == i]) for i, v in enumerate(value)]
        return masks if any(m is not None for m in masks) else None
    return None


def mask_union(a: Any, b: Any) -> Any:
    """Sensitive where either mask says so."""
    if a is True or b is True:
        return True
    if isinstance(a, Mapping) and isinstance(b, Mapping):
        return {k: mask_union(a.get(k), b.get(k)) for k in dict.fromkeys([*a, *b])}
    if isinstance(a, list) and isinstance(b, list):
        return [mask_union(a[i] if i < len(a) else None, b[i] if i < len(b) else None)
                for i in range(max(len(a), len(b)))]
    return a if isinstance(a, (Mapping, list)) else b


def _planned_after(ch: Any, tops: list[str], redactor: Redactor) -> dict[str, Any] | None:
    """The planned values of the changed attributes (unknown ones as UNKNOWN)."""
    if ch.after is None and not ch.after_unknown:
        return None
    return {k: redactor.value(_sub(ch.after, k), _sub(ch.after_sensitive, k), _sub(ch.after_unknown, k))
            for k in tops
            if (isinstance(ch.after, Mapping) and k in ch.after) or _sub(ch.after_unknown, k) not in (None, False)}


def _real_after(ch: Any, outcome: Outcome, planned: dict[str, Any] | None,
                redactor: Redactor) -> tuple[Any, Any]:
    """The object as the state holds it after apply, redacted with the state's sensitive paths and
    the plan's masks; and the planned values that came out otherwise (None when all came true)."""
    if outcome.after is None:  # the state holds no such object: the plan is all there is to show
        return None, planned or None
    obj = dict(outcome.after)
    mask = mask_union(mask_from_paths(obj, outcome.after_sensitive_paths), ch.after_sensitive)
    after_v = redactor.value(obj, mask)
    differ = {k: v for k, v in (planned or {}).items()
              if _sub(ch.after_unknown, k) is not True and v != after_v.get(k)}  # unknown: nothing promised
    return after_v, differ or None


def resource_body(ch: Any, outcome: Outcome, redactor: Redactor) -> dict[str, Any]:
    paths = changed_paths(ch.before, ch.after, ch.after_unknown)
    tops = list(dict.fromkeys(_top_key(p) for p in paths))
    before_v: dict[str, Any] | None = None
    after_v: dict[str, Any] | None = None
    planned_v: dict[str, Any] | None = None
    if ch.before is not None:
        before_v = {k: redactor.value(_sub(ch.before, k), _sub(ch.before_sensitive, k)) for k in tops
                    if isinstance(ch.before, Mapping) and k in ch.before}
    source = outcome.after_source
    if source == "state":
        after_v, planned_v = _real_after(ch, outcome, _planned_after(ch, tops, redactor), redactor)
    else:
        after_v = _planned_after(ch, tops, redactor)
    error = None
    if outcome.error:
        error = {"summary": redactor.scrub(str(outcome.error.get("summary", ""))),
                 "detail": redactor.scrub(str(outcome.error.get("detail", "")))}
    word = summarize_changes([ch])
    return {
        "address": ch.address,
        "previous_address": ch.previous_address,
        "module": ch.module,
        "mode": ch.mode,
        "type": ch.type,
        "name": ch.name,
        "index": ch.index,
        "deposed": ch.deposed,
        "provider": ch.provider,
        "actions": list(ch.actions),
        "action": next(iter(word)),
        "action_reason": ch.action_reason,
        "importing": dict(ch.importing) if ch.importing else None,
        "status": str(outcome.status),
        "phases": [p.as_dict() for p in outcome.phases],
        "evidence": [{"source": e.source, "detail": redactor.scrub(e.detail)} for e in outcome.evidence],
        "error": error,
        "elapsed_seconds": outcome.elapsed_seconds,
        "changed_paths": paths[:MAX_CHANGED_PATHS],
        "changed_paths_truncated": len(paths) > MAX_CHANGED_PATHS,
        "before": before_v,
        "after": after_v,
        "after_source": source,
        **({"planned_after": planned_v} if planned_v else {}),
    }


# --- run.finished ------------------------------------------------------------------------------
def state_ref(state: Any) -> dict[str, Any] | None:
    """Which state: serial, lineage, sha256, and a compact map address -> digest of every resource
    instance, so the next out-of-band check names what was added, removed or changed."""
    if state is None:
        return None
    ref: dict[str, Any] = {"serial": state.serial, "lineage": state.lineage, "sha256": state.sha256,
                           "resources": len(state.resources)}
    digests = {r.address: r.digest for r in state.resources if r.deposed is None and getattr(r, "digest", None)}
    if digests:
        ref["digests"] = dict(sorted(digests.items()))
    return ref


def state_diff(before: Mapping[str, Any] | None, after: Mapping[str, Any] | None) -> dict[str, list[str]] | None:
    """Resources added, removed and changed between two state_refs; None when either lacks digests
    (a state recorded by an older tfaudit: only serials and counts are known)."""
    was = (before or {}).get("digests") if before is not None else {}
    now = (after or {}).get("digests") if after is not None else {}
    if not isinstance(was, Mapping) or not isinstance(now, Mapping):
        return None
    return {"added": sorted(set(now) - set(was)), "removed": sorted(set(was) - set(now)),
            "changed": sorted(a for a in set(was) & set(now) if was[a] != now[a])}


def run_status(counts: Mapping[str, int], exit_code: int, interrupted: bool) -> str:
    if interrupted:
        return "interrupted"
    unsettled = sum(n for k, n in counts.items() if k not in ("succeeded", "not_attempted"))
    if exit_code == 0 and not unsettled:
        return "succeeded"
    return "partial" if counts.get("succeeded") else "failed"


def outcome_body(*, status: str, exit_code: int, counts: Mapping[str, int], state_before: Any, state_after: Any,
                 errors: Sequence[Mapping[str, str]] = (), reason: str | None = None,
                 duration_seconds: float | None = None,
                 failed_checks: Sequence[Mapping[str, Any]] = ()) -> dict[str, Any]:
    full = {"succeeded": 0, "failed": 0, "not_attempted": 0, **counts}
    body: dict[str, Any] = {
        "status": status,
        "exit_code": exit_code,
        "counts": full,
        "state": {"before": state_ref(state_before), "after": state_ref(state_after)},
        "errors": [dict(e) for e in errors],
        "reason": reason,
    }
    if failed_checks:
        body["failed_checks"] = [dict(c) for c in failed_checks]
    if duration_seconds is not None:
        body["duration_seconds"] = round(duration_seconds, 3)
    return body
