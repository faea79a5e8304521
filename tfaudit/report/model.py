"""What a report shows, computed from runs: counts per actor and workspace, risky and failed changes."""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from tfaudit.query import RunSummary
from tfaudit.schema import RecordType

SEVERITY_WEIGHT = {"critical": 100, "high": 60, "medium": 30, "low": 10, "info": 2}
ACTION_WEIGHT = {"delete": 40, "replace": 35, "forget": 20, "update": 10, "import": 5, "move": 5, "create": 3}
STATUS_WEIGHT = {"failed": 20, "incomplete": 20, "unknown": 15, "interrupted": 15, "not_attempted": 5}
# Resource types whose changes touch access, keys, networks or stored data.
SENSITIVE_TYPE_PARTS = ("iam", "security_group", "kms", "policy", "secret", "route53", "db_", "rds", "s3_bucket",
                        "firewall", "network_acl", "key_vault", "role")


@dataclass(frozen=True)
class ScoredChange:
    score: int
    reasons: tuple[str, ...]
    run: RunSummary
    resource: Mapping[str, Any]


@dataclass(frozen=True)
class Tally:
    name: str
    runs: int
    changes: int
    succeeded: int
    failed: int
    other: int


@dataclass(frozen=True)
class OutOfBandEntry:
    """A state.out_of_band record: what changed outside tfaudit, seen when a later run read the state."""

    time: str
    workspace: str
    working_dir: str
    run_id: str
    reasons: tuple[str, ...]
    added: tuple[str, ...]
    removed: tuple[str, ...]
    changed: tuple[str, ...]
    since: str  # when the ledger last saw the state as expected

    def as_dict(self) -> dict[str, Any]:
        return {"time": self.time, "since": self.since, "workspace": self.workspace, "working_dir": self.working_dir,
                "seen_by_run": self.run_id, "reasons": list(self.reasons), "added": list(self.added),
                "removed": list(self.removed), "changed": list(self.changed)}


def out_of_band_entry(run: RunSummary, rec: Mapping[str, Any]) -> OutOfBandEntry:
    detail = _mapping(rec.get("detail"))
    res = _mapping(detail.get("resources"))
    seen = _mapping(_mapping(detail.get("expected")).get("record"))

    def strings(values: Any) -> tuple[str, ...]:
        return tuple(str(v) for v in values or [])

    return OutOfBandEntry(str(rec.get("time", "")), run.workspace, run.working_dir, run.run_id,
                          strings(detail.get("reasons")), added=strings(res.get("added")),
                          removed=strings(res.get("removed")), changed=strings(res.get("changed")),
                          since=str(seen.get("time", "")))


def _mapping(value: object) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


@dataclass
class ReportModel:
    runs: list[RunSummary]
    per_actor: list[Tally] = field(default_factory=list)
    per_workspace: list[Tally] = field(default_factory=list)
    riskiest: list[ScoredChange] = field(default_factory=list)
    failed: list[tuple[RunSummary, Mapping[str, Any]]] = field(default_factory=list)
    outcomes: Counter[str] = field(default_factory=Counter)
    out_of_band: list[OutOfBandEntry] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {"runs": len(self.runs), "changes": sum(len(r.resources) for r in self.runs),
                "outcomes": dict(self.outcomes),
                "per_actor": [vars(t) for t in self.per_actor], "per_workspace": [vars(t) for t in self.per_workspace],
                "riskiest": [{"score": s.score, "reasons": list(s.reasons), "run_id": s.run.run_id, "time": s.run.time,
                              "actor": s.run.actor, "address": s.resource.get("address"),
                              "action": s.resource.get("action"), "status": s.resource.get("status")}
                             for s in self.riskiest],
                "failed": [{"run_id": r.run_id, "time": r.time, "address": res.get("address"), "error": res.get("error")}
                           for r, res in self.failed],
                "out_of_band": [e.as_dict() for e in self.out_of_band]}


def score_change(run: RunSummary, res: Mapping[str, Any]) -> ScoredChange:
    score = 0
    reasons: list[str] = []
    findings = [f for f in res.get("findings") or [] if isinstance(f, Mapping)]
    findings += [f for f in run.findings if f.get("address") and f.get("address") == res.get("address")]
    # run.findings also holds the resource's own findings: count each once
    unique = {(f.get("rule"), f.get("address"), f.get("message")): f for f in findings}
    for f in unique.values():
        w = SEVERITY_WEIGHT.get(str(f.get("severity")), 0)
        score += w
        reasons.append(f"{f.get('severity')} finding {f.get('rule')}")
    action = str(res.get("action") or "")
    if action in ACTION_WEIGHT:
        score += ACTION_WEIGHT[action]
        reasons.append(action)
    status = str(res.get("status") or "")
    if status in STATUS_WEIGHT:
        score += STATUS_WEIGHT[status]
        reasons.append(status)
    rtype = str(res.get("type") or "")
    if any(p in rtype for p in SENSITIVE_TYPE_PARTS):
        score += 15
        reasons.append("access/data-sensitive type")
    return ScoredChange(score, tuple(reasons), run, res)


def _tally(groups: Mapping[str, Sequence[RunSummary]]) -> list[Tally]:
    out = []
    for name, runs in groups.items():
        statuses = Counter(str(r.get("status")) for run in runs for r in run.resources)
        changes = sum(statuses.values())
        out.append(Tally(name, len(runs), changes, statuses["succeeded"], statuses["failed"],
                         changes - statuses["succeeded"] - statuses["failed"]))
    return sorted(out, key=lambda t: (-t.changes, -t.runs, t.name))


def build(runs: list[RunSummary], *, top: int = 15) -> ReportModel:
    model = ReportModel(runs=runs)
    by_actor: dict[str, list[RunSummary]] = defaultdict(list)
    by_ws: dict[str, list[RunSummary]] = defaultdict(list)
    scored: list[ScoredChange] = []
    for run in runs:
        model.outcomes[run.status] += 1
        model.out_of_band += [out_of_band_entry(run, rec) for rec in run.records if rec.get("type") == RecordType.STATE_OUT_OF_BAND]
        if run.command == "plan":
            continue  # plans change nothing; they show on the timeline only
        by_actor[run.actor].append(run)
        by_ws[run.workspace].append(run)
        for res in run.resources:
            scored.append(score_change(run, res))
            if res.get("status") in ("failed", "interrupted", "incomplete", "unknown"):
                model.failed.append((run, res))
    model.per_actor = _tally(by_actor)
    model.per_workspace = _tally(by_ws)
    scored.sort(key=lambda s: (s.score, s.run.time), reverse=True)
    model.riskiest = [s for s in scored if s.score > 0][:top]
    model.failed.sort(key=lambda x: x[0].time, reverse=True)
    model.out_of_band.sort(key=lambda e: e.time, reverse=True)
    return model
