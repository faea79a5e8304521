"""One alert per run for the Slack and PagerDuty sinks: who, where, what happened, which resources."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from tfaudit.schema import RecordType
from tfaudit.sinks.base import Item, Severity, record_severity

MAX_RESOURCES = 20
_PAST = {"create": "created", "update": "updated", "delete": "deleted", "replace": "replaced", "import": "imported",
         "move": "moved", "forget": "forgotten"}


@dataclass(frozen=True)
class ResourceLine:
    address: str
    action: str
    status: str
    error: str | None = None


@dataclass
class RunAlert:
    run_id: str
    command: str
    workspace: str
    working_dir: str
    actor: str
    hostname: str | None
    status: str
    severity: Severity
    time: str
    counts: dict[str, int] = field(default_factory=dict)
    actions: dict[str, int] = field(default_factory=dict)
    resources: list[ResourceLine] = field(default_factory=list)
    more_resources: int = 0
    record_ids: list[str] = field(default_factory=list)

    @property
    def title(self) -> str:
        return f"tfaudit: {self.command} {self.status} in workspace {self.workspace} by {self.actor}"

    def counts_text(self) -> str:
        order = {"succeeded": 0, "failed": 1, "incomplete": 2, "unknown": 3, "not_attempted": 4, "interrupted": 5}
        parts = [f"{v} {k.replace('_', ' ')}" for k, v in sorted(self.counts.items(), key=lambda kv: order.get(kv[0], 9))
                 if v]
        acts = [f"{v} {_PAST.get(k, k)}" for k, v in sorted(self.actions.items())]
        return "; ".join(x for x in (", ".join(parts), ", ".join(acts)) if x) or "no resource changes"


def build_alert(run_id: str, alert_items: Sequence[Item], context: Sequence[Item]) -> RunAlert:
    """The alert for one run: alert_items are the records that matched; context is the whole run."""
    everything = sorted({it.id: it for it in [*context, *alert_items]}.values(), key=lambda it: it.seq)
    first: dict[str, Any] = dict(everything[0].record) if everything else {}
    run = first.get("run") or {}
    actor = first.get("actor") or {}
    finished = next((it.record for it in reversed(everything) if it.type == RecordType.RUN_FINISHED), None)
    outcome = (finished or {}).get("outcome") or {}
    changed = [it.record.get("resource") or {} for it in everything if it.type == RecordType.RESOURCE_CHANGED]
    alert_resources = [it.record.get("resource") or {} for it in alert_items if it.type == RecordType.RESOURCE_CHANGED]
    if not alert_resources:
        # a failed run: show what failed, else every change it made
        alert_resources = [r for r in changed if r.get("status") in ("failed", "interrupted", "incomplete", "unknown")] or changed
    severity = max((record_severity(it.record) for it in alert_items), key=lambda s: s.rank, default=Severity.INFO)
    lines = [ResourceLine(str(r.get("address")), str(r.get("action") or "-".join(r.get("actions") or [])),
                          str(r.get("status")), ((r.get("error") or {}).get("summary") or None))
             for r in alert_resources]
    return RunAlert(
        run_id=run_id, command=str(run.get("command") or "?"), workspace=str(run.get("workspace") or "default"),
        working_dir=str(run.get("working_dir") or ""), actor=str(actor.get("user") or "unknown"),
        hostname=actor.get("hostname"), status=str(outcome.get("status") or "unfinished"), severity=severity,
        time=str((finished or first).get("time") or ""),
        counts={k: int(v) for k, v in (outcome.get("counts") or {}).items() if isinstance(v, int)},
        actions=dict(Counter(str(r.get("action")) for r in changed if r.get("action"))),
        resources=lines[:MAX_RESOURCES], more_resources=max(0, len(lines) - MAX_RESOURCES),
        record_ids=[it.id for it in alert_items],
    )


def group_by_run(items: Sequence[Item]) -> dict[str, list[Item]]:
    out: dict[str, list[Item]] = {}
    for it in items:
        out.setdefault(it.run_id, []).append(it)
    return out
