"""Reading the trail back: runs and resource changes out of one or more ledgers.

Sources are local ledger files or, when the S3 sink is installed, `s3://bucket/prefix`
listings of the sink's objects. Records seen twice (the same ledger read from two places)
count once, by record id. Nothing here verifies signatures: that is `tfaudit verify`.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from enum import Enum
from pathlib import Path
from typing import Any, Protocol

from tfaudit.errors import InputError, UsageError
from tfaudit.schema import RecordType
from tfaudit.trail.jsonline import BadLine, parse_line
from tfaudit.trail.store import open_store


def _obj(parent: Mapping[str, Any], key: str) -> Mapping[str, Any]:
    """parent[key] when it is an object, else an empty one (records are read defensively)."""
    value = parent.get(key)
    return value if type(value) is dict or isinstance(value, Mapping) else {}  # dict first: ABC checks are slow


class Progress(Protocol):
    """Told how many bytes a read will take and how far it got (a terminal bar, or nothing)."""

    def add_total(self, nbytes: int) -> None: ...

    def advance(self, nbytes: int) -> None: ...


class _NoProgress:
    def add_total(self, nbytes: int) -> None:
        pass

    def advance(self, nbytes: int) -> None:
        pass


class RunStatus(str, Enum):
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    PARTIAL = "partial"
    INTERRUPTED = "interrupted"
    BLOCKED = "blocked"
    CANCELLED = "cancelled"
    PLANNED = "planned"  # a plan.recorded with no apply
    UNFINISHED = "unfinished"  # run.started without run.finished (killed, or still running)
    DRIFTED = "drifted"  # tfaudit drift found drift
    OUT_OF_BAND = "out_of_band"  # state changed outside the audited path, seen before this run


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
    status: str = RunStatus.UNFINISHED.value
    exit_code: int | None = None
    counts: dict[str, int] = field(default_factory=dict)
    planned: dict[str, int] = field(default_factory=dict)
    resources: list[Mapping[str, Any]] = field(default_factory=list)
    records: list[Mapping[str, Any]] = field(default_factory=list)
    findings: list[Mapping[str, Any]] = field(default_factory=list)
    actor_block: Mapping[str, Any] = field(default_factory=dict)
    plan_sha256: str | None = None
    recorded_by: Mapping[str, Any] | None = None
    duration_seconds: float | None = None
    reason: str | None = None

    @property
    def ci(self) -> Mapping[str, Any] | None:
        ci = self.actor_block.get("ci")
        return ci if isinstance(ci, Mapping) else None

    def as_dict(self) -> dict[str, Any]:
        ci = self.ci
        return {
            "run_id": self.run_id, "ledger": self.ledger, "command": self.command, "time": self.time,
            "actor": self.actor, "workspace": self.workspace, "working_dir": self.working_dir,
            "status": self.status, "exit_code": self.exit_code, "counts": self.counts, "planned": self.planned,
            "findings": list(self.findings), "plan_sha256": self.plan_sha256,
            "plan_recorded_by": dict(self.recorded_by) if self.recorded_by else None,
            "duration_seconds": self.duration_seconds, "reason": self.reason,
            "ci": {k: ci.get(k) for k in ("provider", "repository", "ref", "run_id", "url")} if ci else None,
        }


@dataclass(frozen=True)
class Filters:
    """Which runs to keep; None means no restriction."""

    since: datetime | None = None
    until: datetime | None = None
    actors: tuple[str, ...] = ()
    workspaces: tuple[str, ...] = ()
    outcomes: tuple[str, ...] = ()

    def keep(self, run: RunSummary) -> bool:
        return self.keep_values(run.time, actor_names(run), run.workspace, run.status)

    def keep_values(self, time: str, names: Sequence[str], workspace: str, status: str) -> bool:
        """keep() on a run's time, actor names, workspace and status (what the run index holds)."""
        t = parse_time(time)
        if self.since and (t is None or t < self.since):
            return False
        if self.until and (t is None or t > self.until):
            return False
        if self.actors and not any(_glob(p, v) for p in self.actors for v in names):
            return False
        if self.workspaces and not any(_glob(p, workspace) for p in self.workspaces):
            return False
        return not self.outcomes or status in self.outcomes


def _glob(pattern: str, value: str | None) -> bool:
    return value is not None and fnmatch.fnmatchcase(value.lower(), pattern.lower())


def actor_names(run: RunSummary) -> list[str]:
    """The names --actor matches: the user, the OS login, git's email and name."""
    actor = run.actor_block
    git = _obj(actor, "git")
    names = [run.actor, actor.get("os_user"), git.get("user_email"), git.get("user_name")]
    return [str(n) for n in names if n]


# --- time -------------------------------------------------------------------------------------
_RELATIVE = re.compile(r"^(\d+)\s*([smhdw])$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def parse_time(text: str | None) -> datetime | None:
    """A record's RFC 3339 time as an aware datetime; None when absent or malformed."""
    if not text:
        return None
    try:
        t = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return t if t.tzinfo else t.replace(tzinfo=timezone.utc)


def parse_when(text: str, option: str, now: datetime | None = None) -> datetime:
    """--since/--until: an ISO date or date-time (UTC unless it says otherwise), or an age like 7d, 12h, 30m."""
    now = now or datetime.now(timezone.utc)
    m = _RELATIVE.match(text.strip().lower())
    if m:
        return now - timedelta(**{_UNITS[m.group(2)]: int(m.group(1))})
    t = parse_time(text.strip())
    if t is None:
        raise UsageError(f"{option} {text!r} is not a date, a date-time or an age",
                         hint="use e.g. 2026-01-31, 2026-01-31T14:00:00Z, 7d, 12h or 30m")
    return t


# --- sources ----------------------------------------------------------------------------------
RecordSource = Callable[[Progress], Iterator[dict[str, Any]]]


def local_source(path: Path | str, env: Mapping[str, str] | None = None) -> tuple[str, RecordSource]:
    """A ledger store: a file, or a shared store's URL (s3://, postgresql://)."""
    def read(progress: Progress) -> Iterator[dict[str, Any]]:
        view = open_store(path, env).snapshot()
        progress.add_total(getattr(view, "size", 0))
        for _, raw in view.lines():
            progress.advance(len(raw))
            try:
                yield parse_line(raw)
            except BadLine:
                continue  # `tfaudit verify` reports these

    return str(path), read


def s3_source(url: str, env: Mapping[str, str]) -> tuple[str, RecordSource]:
    """The S3 sink's objects (`<prefix>/<yyyy>/<mm>/<dd>/<workspace>/<run_id>.jsonl`) under s3://bucket/prefix."""
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    bucket, prefix = parts.netloc, parts.path.lstrip("/")
    if not bucket:
        raise UsageError(f"{url} names no bucket", hint="use s3://BUCKET/PREFIX")
    if prefix and not prefix.endswith("/"):
        prefix += "/"

    def read(progress: Progress) -> Iterator[dict[str, Any]]:
        from tfaudit import _aws  # boto3 only when an s3:// source is read

        try:
            s3 = _aws.client("s3", _aws.AwsSettings(), env)
            objects = []
            for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
                for obj in page.get("Contents") or []:
                    if str(obj["Key"]).endswith(".jsonl"):
                        objects.append(obj)
                        progress.add_total(int(obj.get("Size") or 0))
            # keys start with the date, so key order is time order within a prefix
            for obj in sorted(objects, key=lambda o: str(o["Key"])):
                body = s3.get_object(Bucket=bucket, Key=obj["Key"])["Body"].read()
                progress.advance(len(body))
                for line in body.splitlines():
                    try:
                        yield parse_line(line)
                    except BadLine:
                        continue
        except ImportError:
            raise UsageError(f"cannot read {url}: boto3 is not installed",
                             hint="pip install 'tfaudit[aws]'") from None
        except _aws.botocore_errors() as e:
            raise InputError(f"cannot read {url}: {_aws.error_text(e)[:200]}",
                             hint="check the bucket, prefix and AWS credentials") from e

    return url, read


def sources_for(specs: Sequence[str | Path], env: Mapping[str, str] | None = None) -> list[tuple[str, RecordSource]]:
    out: list[tuple[str, RecordSource]] = []
    for spec in specs:
        text = str(spec)
        if text.startswith("s3://"):  # a ledger store when one is there, else the S3 sink's objects
            shared = open_store(text, env)
            out.append(local_source(text, env) if shared.exists() else s3_source(text, env or {}))
        elif "://" in text and not text.startswith("file://"):
            out.append(local_source(text, env))
        else:
            path = Path(text)
            if path.is_dir():
                # a folder of ledgers, e.g. the S3 sink's objects synced locally
                out += [local_source(p) for p in sorted(path.rglob("*.jsonl"))]
            else:
                out.append(local_source(path))
    return out


def iter_records(paths: Iterable[Path | str], progress: Progress | None = None,
                 env: Mapping[str, str] | None = None) -> Iterator[tuple[str, dict[str, Any]]]:
    """(source name, record) for every record in every source, each record id once."""
    prog = progress or _NoProgress()
    seen: set[str] = set()
    for name, read in sources_for(list(paths), env):
        for rec in read(prog):
            rid = rec.get("id")
            if isinstance(rid, str):
                if rid in seen:
                    continue
                seen.add(rid)
            yield name, rec


# --- runs ---------------------------------------------------------------------------------
def runs(paths: Iterable[Path | str], filters: Filters | None = None, progress: Progress | None = None,
         env: Mapping[str, str] | None = None) -> list[RunSummary]:
    """Every run in the ledgers, newest first. plan.recorded records count as runs of `plan`."""
    by_id: dict[str, RunSummary] = {}
    for source, rec in iter_records(paths, progress, env):
        add_record(by_id, source, rec)
    found = sorted(by_id.values(), key=lambda r: (r.time, r.run_id), reverse=True)
    return [r for r in found if filters is None or filters.keep(r)]


def add_record(by_id: dict[str, RunSummary], source: str, rec: Mapping[str, Any]) -> None:
    run = _obj(rec, "run")
    rid = run.get("id")
    if not isinstance(rid, str):
        return
    actor = _obj(rec, "actor")
    summary = by_id.get(rid)
    if summary is None:
        summary = by_id[rid] = RunSummary(
            run_id=rid, ledger=source, command=str(run.get("command", "?")), time=str(rec.get("time", "")),
            actor=str(actor.get("user", "?")), workspace=str(run.get("workspace", "?")),
            working_dir=str(run.get("working_dir", "")), actor_block=actor,
            plan_sha256=run.get("plan_sha256") if isinstance(run.get("plan_sha256"), str) else None)
    summary.records.append(rec)
    if rec.get("time") and str(rec["time"]) < summary.time:
        summary.time = str(rec["time"])
    _add_findings(summary, rec.get("findings"))
    rtype = rec.get("type")
    if rtype in (RecordType.RUN_STARTED, RecordType.PLAN_RECORDED):
        plan = _obj(rec, "plan")
        summary.planned = dict(plan.get("summary") or {})
        if isinstance(plan.get("recorded_by"), Mapping):
            summary.recorded_by = plan["recorded_by"]
        if rtype == RecordType.PLAN_RECORDED:
            summary.status = RunStatus.PLANNED.value
        elif summary.status == RunStatus.OUT_OF_BAND.value:
            summary.status = RunStatus.UNFINISHED.value
    elif rtype == RecordType.RESOURCE_CHANGED:
        res = _obj(rec, "resource")
        summary.resources.append(res)
        _add_findings(summary, res.get("findings"))
    elif rtype == RecordType.RUN_FINISHED:
        outcome = _obj(rec, "outcome")
        summary.status = str(outcome.get("status", "?"))
        summary.exit_code = outcome.get("exit_code")
        summary.counts = {k: v for k, v in (outcome.get("counts") or {}).items() if v}
        summary.duration_seconds = outcome.get("duration_seconds")
        summary.reason = outcome.get("reason")
    elif rtype == RecordType.STATE_CHANGED:  # tfaudit import / state / taint: one record is the whole run
        detail = _obj(rec, "detail")
        summary.status = str(detail.get("status", "?"))
        summary.exit_code = detail.get("exit_code")
    elif rtype == RecordType.DRIFT_DETECTED:
        summary.status = RunStatus.DRIFTED.value
        summary.counts["drifted"] = summary.counts.get("drifted", 0) + 1
    elif rtype == RecordType.STATE_OUT_OF_BAND and summary.status == RunStatus.UNFINISHED.value and len(summary.records) == 1:
        summary.status = RunStatus.OUT_OF_BAND.value  # until the run's own records say more


def _add_findings(summary: RunSummary, findings: Any) -> None:
    """Findings appear on run.started and again on the resources they concern: count each once."""
    seen = {(f.get("rule"), f.get("address"), f.get("message")) for f in summary.findings}
    for f in findings or ():
        if isinstance(f, Mapping) and (key := (f.get("rule"), f.get("address"), f.get("message"))) not in seen:
            seen.add(key)
            summary.findings.append(f)
