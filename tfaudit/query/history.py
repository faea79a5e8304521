"""One resource's history: every recorded change to the resources matching an address glob.

Built from `resource.changed` records (and the addresses `state.out_of_band` records name),
newest first, with each change's run outcome from its run's `run.finished`. The selection
(`pick`) is shared by the whole-ledger scan here and the run index (tfaudit.query.runindex), so
both give the same answer.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from tfaudit.query import Progress, RunStatus, _obj, iter_records
from tfaudit.schema import RecordType


@dataclass(frozen=True)
class Change:
    """One recorded change to a resource: when, who, which action, what changed, did it work."""

    time: str
    seq: int | None
    ledger: str
    run_id: str
    command: str
    workspace: str
    working_dir: str
    actor: str
    actor_block: Mapping[str, Any]
    address: str
    previous_address: str | None
    action: str
    actions: tuple[str, ...]
    status: str
    run_status: str
    changed_paths: tuple[str, ...]
    before: Mapping[str, Any] | None
    after: Mapping[str, Any] | None
    error: Mapping[str, Any] | None
    findings: tuple[Mapping[str, Any], ...] = ()
    phases: tuple[Mapping[str, Any], ...] = ()
    evidence: tuple[Mapping[str, Any], ...] = ()
    after_source: str | None = None  # "state": after is the object as the state held it after apply
    planned_after: Mapping[str, Any] = field(default_factory=dict)
    out_of_band: bool = False  # seen in the state, made outside tfaudit: no actor, no attribute paths

    def as_dict(self) -> dict[str, Any]:
        ci = self.actor_block.get("ci") if isinstance(self.actor_block.get("ci"), Mapping) else None
        return {
            "time": self.time, "seq": self.seq, "ledger": self.ledger, "run_id": self.run_id,
            "command": self.command, "workspace": self.workspace, "working_dir": self.working_dir,
            "actor": self.actor, "ci": dict(ci) if ci else None, "address": self.address,
            "previous_address": self.previous_address, "action": self.action, "actions": list(self.actions),
            "status": self.status, "run_status": self.run_status, "changed_paths": list(self.changed_paths),
            "before": self.before, "after": self.after, "error": self.error, "findings": list(self.findings),
            "phases": list(self.phases), "evidence": list(self.evidence), "after_source": self.after_source,
            "planned_after": dict(self.planned_after),
            "out_of_band": self.out_of_band,
        }


def history(pattern: str, paths: Iterable[Path | str], progress: Progress | None = None,
            env: Mapping[str, str] | None = None) -> list[Change]:
    """Every change to the resources matching pattern (a glob over addresses), newest first.

    Moves are followed backwards: once a matching resource is seen arriving from
    `previous_address`, the older records of that address belong to its history too.
    """
    changes: list[Change] = []
    run_status: dict[str, str] = {}
    for source, rec in iter_records(paths, progress, env):
        rtype = rec.get("type")
        if rtype == RecordType.RUN_FINISHED:
            run_status[run_key(rec)] = finished_status(rec)
        else:
            changes += changes_in(source, rec)
    return with_run_status(pick(changes, pattern), run_status)


def run_key(rec: Mapping[str, Any]) -> str:
    return str(_obj(rec, "run").get("id", ""))


def finished_status(rec: Mapping[str, Any]) -> str:
    return str(_obj(rec, "outcome").get("status", "?"))


def changes_in(source: str, rec: Mapping[str, Any]) -> list[Change]:
    """The changes one record holds: a resource.changed, or the addresses a state.out_of_band names."""
    rtype = rec.get("type")
    if rtype == RecordType.RESOURCE_CHANGED:
        return [_change(source, rec)]
    if rtype == RecordType.STATE_OUT_OF_BAND:
        return out_of_band_changes(source, rec)
    return []


def addresses_in(rec: Mapping[str, Any]) -> list[tuple[str, str | None]]:
    """(address, previous address) of each change changes_in() finds in a record, without building them."""
    rtype = rec.get("type")
    if rtype == RecordType.RESOURCE_CHANGED:
        res = _obj(rec, "resource")
        prev = res.get("previous_address") or None
        return [(str(res.get("address", "")), prev if isinstance(prev, str) else None)]
    if rtype == RecordType.STATE_OUT_OF_BAND:
        changed = _obj(_obj(rec, "detail"), "resources")
        return [(str(a), None) for key in OUT_OF_BAND_ACTIONS for a in changed.get(key) or []]
    return []


def pick(changes: list[Change], pattern: str) -> list[Change]:
    """The changes (all of them, in ledger order) that belong to pattern's history, newest first."""
    changes = sorted(changes, key=lambda c: (c.time, c.seq or 0), reverse=True)
    matches = address_matcher(pattern)
    tracked: set[str] = set()
    out: list[Change] = []
    for ch in changes:  # newest first, so a move is seen before the records it continues
        if not (matches(ch.address) or ch.address in tracked):
            continue
        out.append(ch)
        if ch.previous_address and ch.previous_address != ch.address:
            tracked.add(ch.previous_address)
    return out


def with_run_status(changes: list[Change], run_status: Mapping[str, str]) -> list[Change]:
    """Each change with its run's outcome (unfinished when its run has no run.finished)."""
    return [c if c.out_of_band else replace(c, run_status=run_status.get(c.run_id, RunStatus.UNFINISHED.value))
            for c in changes]


def _change(source: str, rec: Mapping[str, Any]) -> Change:
    run = _obj(rec, "run")
    res = _obj(rec, "resource")
    actor = _obj(rec, "actor")
    chain = _obj(rec, "chain")
    return Change(
        time=str(rec.get("time", "")), seq=chain.get("seq") if isinstance(chain.get("seq"), int) else None,
        ledger=source, run_id=str(run.get("id", "")), command=str(run.get("command", "?")),
        workspace=str(run.get("workspace", "?")), working_dir=str(run.get("working_dir", "")),
        actor=str(actor.get("user", "?")), actor_block=actor, address=str(res.get("address", "")),
        previous_address=res.get("previous_address") or None, action=str(res.get("action", "?")),
        actions=tuple(res.get("actions") or ()), status=str(res.get("status", "?")), run_status="",
        changed_paths=tuple(res.get("changed_paths") or ()), before=res.get("before"), after=res.get("after"),
        error=res.get("error"), findings=tuple(f for f in res.get("findings") or [] if isinstance(f, Mapping)),
        phases=tuple(p for p in res.get("phases") or [] if isinstance(p, Mapping)),
        evidence=tuple(e for e in res.get("evidence") or [] if isinstance(e, Mapping)),
        after_source=res.get("after_source") if isinstance(res.get("after_source"), str) else None,
        planned_after=_obj(res, "planned_after"),
    )


OUT_OF_BAND_ACTIONS = {"added": "create", "removed": "delete", "changed": "update"}


def out_of_band_changes(source: str, rec: Mapping[str, Any]) -> list[Change]:
    """The resources a state.out_of_band record names as added, removed or changed outside tfaudit.

    Their time is when tfaudit saw the state (the change happened between the record's
    `expected` state and then); who made them is unknown."""
    run = _obj(rec, "run")
    detail = _obj(rec, "detail")
    chain = _obj(rec, "chain")
    changed = _obj(detail, "resources")
    out = []
    for key, action in OUT_OF_BAND_ACTIONS.items():
        for address in changed.get(key) or []:
            out.append(Change(
                time=str(rec.get("time", "")), seq=chain.get("seq") if isinstance(chain.get("seq"), int) else None,
                ledger=source, run_id=str(run.get("id", "")), command="outside tfaudit",
                workspace=str(run.get("workspace", "?")), working_dir=str(run.get("working_dir", "")),
                actor="(unknown)", actor_block={}, address=str(address), previous_address=None, action=action,
                actions=(action,), status=RunStatus.OUT_OF_BAND.value, run_status=RunStatus.OUT_OF_BAND.value,
                changed_paths=(), before=None, after=None, error=None,
                findings=tuple(f for f in rec.get("findings") or [] if isinstance(f, Mapping)), out_of_band=True))
    return out


def address_matcher(pattern: str) -> Callable[[str], bool]:
    """`*` and `?` are wildcards; everything else is literal, since addresses use [ ] and quotes.

    As in terraform, an address without an instance key means every instance
    (`terraform_data.app` matches `terraform_data.app[0]`), and a module address everything in it."""
    glob = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)
    regex = re.compile(glob + r"(?:[\[.].*)?\Z", re.DOTALL)
    return lambda address: regex.match(address) is not None
