"""Reading the trail back: runs and resource changes out of one or more ledgers."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tfaudit.ledger import Ledger


@dataclass
class RunSummary:
    """One run of a wrapped command, assembled from its records."""

    run_id: str
    ledger: str
    command: str
    time: str
    actor: str
    workspace: str
    working_dir: str
    status: str = "unfinished"
    exit_code: int | None = None
    counts: dict[str, int] = field(default_factory=dict)
    planned: dict[str, int] = field(default_factory=dict)
    resources: list[Mapping[str, Any]] = field(default_factory=list)
    records: list[Mapping[str, Any]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id, "ledger": self.ledger, "command": self.command, "time": self.time,
            "actor": self.actor, "workspace": self.workspace, "working_dir": self.working_dir,
            "status": self.status, "exit_code": self.exit_code, "counts": self.counts, "planned": self.planned,
        }


def iter_records(paths: Iterable[Path]) -> Iterator[tuple[Path, dict[str, Any]]]:
    for path in paths:
        for rec in Ledger(path).records():
            yield path, rec


def runs(paths: Iterable[Path]) -> list[RunSummary]:
    """Every run in the ledgers, newest first. plan.recorded records count as runs of `plan`."""
    by_id: dict[str, RunSummary] = {}
    for path, rec in iter_records(paths):
        run = rec.get("run") or {}
        rid = run.get("id")
        if not isinstance(rid, str):
            continue
        summary = by_id.get(rid)
        if summary is None:
            summary = by_id[rid] = RunSummary(
                run_id=rid, ledger=str(path), command=str(run.get("command", "?")), time=str(rec.get("time", "")),
                actor=str((rec.get("actor") or {}).get("user", "?")), workspace=str(run.get("workspace", "?")),
                working_dir=str(run.get("working_dir", "")))
        summary.records.append(rec)
        rtype = rec.get("type")
        if rtype in ("run.started", "plan.recorded"):
            summary.planned = dict((rec.get("plan") or {}).get("summary") or {})
            if rtype == "plan.recorded":
                summary.status = "planned"
        elif rtype == "resource.changed":
            summary.resources.append(rec.get("resource") or {})
        elif rtype == "run.finished":
            outcome = rec.get("outcome") or {}
            summary.status = str(outcome.get("status", "?"))
            summary.exit_code = outcome.get("exit_code")
            summary.counts = {k: v for k, v in (outcome.get("counts") or {}).items() if v}
    return sorted(by_id.values(), key=lambda r: r.time, reverse=True)
