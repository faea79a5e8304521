"""What every sink shares: the Sink Protocol, the parsed sink block, filters and severities.

A sink receives `Item`s: a ledger record exactly as written (its parsed form and its line
bytes), so a sink using the native format ships the very bytes that were signed and
chained, and the receiver can verify them. Sinks report progress through the `Batch`
they are given (`ok`/`fail`), so what was delivered is recorded as it happens, not at the
end.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import Enum
from functools import cached_property
from typing import Any, ClassVar, Protocol

from tfaudit.records import Severity as Severity  # re-exported for the sinks
from tfaudit.redact import Redactor
from tfaudit.schema import RecordType

# Statuses and actions that make a record worth an alert (Slack, PagerDuty by default).
_BAD_RUN = {"failed", "partial", "interrupted"}
_BAD_RESOURCE = {"failed", "interrupted", "incomplete", "unknown"}
_DESTRUCTIVE = {"delete", "replace"}


def record_severity(record: Mapping[str, Any]) -> Severity:
    """How much a record matters, for `min_severity` filters.

    high: a failed, partial or interrupted run; a resource that failed or was interrupted.
    medium: a resource deleted or replaced; a run blocked or cancelled.
    low: any other resource change.  info: run.started, plan.recorded, a succeeded run.
    Findings attached to the record or to its resource (risk rules) raise it to their highest
    severity; a finding whose rule has `effect = "alert"` raises it to at least high, so that the
    alert sinks (Slack, PagerDuty: medium and up by default) receive it.
    """
    rtype = record.get("type")
    sev = Severity.INFO
    if rtype == RecordType.RUN_FINISHED:
        status = (record.get("outcome") or {}).get("status")
        sev = Severity.HIGH if status in _BAD_RUN else Severity.MEDIUM if status in ("blocked", "cancelled") else Severity.INFO
    elif rtype == RecordType.RESOURCE_CHANGED:
        res = record.get("resource") or {}
        if res.get("status") in _BAD_RESOURCE:
            sev = Severity.HIGH
        elif res.get("action") in _DESTRUCTIVE:
            sev = Severity.MEDIUM
        else:
            sev = Severity.LOW
    resource = record.get("resource")
    findings = [*(record.get("findings") or ()),
                *((resource.get("findings") or ()) if isinstance(resource, Mapping) else ())]
    for finding in findings:
        try:
            fsev = Severity(finding.get("severity"))
        except (ValueError, AttributeError):
            continue
        if finding.get("effect") == "alert" and fsev.rank < Severity.HIGH.rank:
            fsev = Severity.HIGH
        if fsev.rank > sev.rank:
            sev = fsev
    return sev


@dataclass(frozen=True)
class SinkFilter:
    types: frozenset[str] | None = None  # None: every record type
    min_severity: Severity = Severity.INFO

    def matches(self, record: Mapping[str, Any]) -> bool:
        if self.types is not None and record.get("type") not in self.types:
            return False
        return self.min_severity is Severity.INFO or record_severity(record).rank >= self.min_severity.rank


@dataclass(frozen=True)
class SinkSpec:
    """One parsed `sink "<kind>" "<name>" { ... }` block."""

    kind: str
    name: str
    filter: SinkFilter
    format: str = "native"
    timeout_seconds: float = 10.0
    settings: Mapping[str, Any] = field(default_factory=dict)

    @property
    def id(self) -> str:
        return f"{self.kind}.{self.name}"


class OnFailure(str, Enum):
    WARN = "warn"
    FAIL = "fail"


@dataclass(frozen=True)
class DeliveryConfig:
    on_failure: OnFailure = OnFailure.WARN
    max_attempts: int = 3  # per request, including the first
    deadline_seconds: float = 20.0  # per sink per delivery: a dead endpoint costs at most this


@dataclass(frozen=True)
class Item:
    """A ledger record as written: parsed, its exact line, and its position in the ledger (`end_offset`)."""

    record: Mapping[str, Any]
    line: bytes
    end_offset: int = 0

    # cached: asked for several times per record and sink during a delivery
    @cached_property
    def id(self) -> str:
        return str(self.record["id"])

    @cached_property
    def seq(self) -> int:
        return int(self.record["chain"]["seq"])

    @cached_property
    def run_id(self) -> str:
        return str((self.record.get("run") or {}).get("id") or "")

    @cached_property
    def type(self) -> str:
        return str(self.record.get("type"))


def encode(item: Item, fmt: str) -> bytes:
    """The bytes a sink ships for item: the exact ledger line for "native", else the formatter's JSON."""
    if fmt == "native":
        return item.line
    from tfaudit.export import formatter

    doc = formatter(fmt)(item.record)
    return json.dumps(doc, separators=(",", ":"), sort_keys=True, ensure_ascii=False).encode("utf-8")


class Batch:
    """What one sink is asked to deliver now, and where it reports what happened.

    `ok`/`fail` are thread-safe. Failures write through to the outbox at once; successes are
    written in groups (once the oldest unwritten one is ACK_SECONDS old or ACK_GROUP are waiting,
    and at `flush`, which the delivery commits together with how far the sink is settled): one
    durable outbox commit per record cost more than the POST itself, and a run sent in one call
    (webhook batch mode, CloudWatch) is then recorded with one commit. A crash before a group
    is written leaves those records in doubt, and the next delivery asks the sink (`confirm`)
    or re-sends them with the same idempotency key, as for any crash mid-send.
    """

    ACK_GROUP = 10_000
    ACK_SECONDS = 0.25

    def __init__(self, items: Sequence[Item], *, deadline: float, redactor: Redactor,
                 on_ok: Callable[[Sequence[Item]], None], on_fail: Callable[[Sequence[Item], str], None],
                 run_items: Callable[[str], list[Item]], record_filter: SinkFilter | None = None,
                 max_attempts: int = 3) -> None:
        self.items = list(items)
        self.filter = record_filter or SinkFilter()
        self.deadline = deadline
        self.redactor = redactor
        self.max_attempts = max_attempts
        self._on_ok, self._on_fail, self._run_items = on_ok, on_fail, run_items
        self._lock = threading.Lock()
        self.done: set[str] = set()
        self.errors: dict[str, str] = {}
        self._acked: list[Item] = []
        self._acked_since = time.monotonic()

    def remaining(self) -> float:
        return max(0.0, self.deadline - time.monotonic())

    def run_items(self, run_id: str, *, unfiltered: bool = False) -> list[Item]:
        """Every record of run_id in the ledger (that this sink's filter accepts, unless unfiltered), delivered or not."""
        found = self._run_items(run_id)
        return found if unfiltered else [it for it in found if self.filter.matches(it.record)]

    def ok(self, items: Sequence[Item]) -> None:
        with self._lock:
            if not self._acked:
                self._acked_since = time.monotonic()
            self._acked.extend(items)
            for it in items:
                self.done.add(it.id)
                self.errors.pop(it.id, None)
            if len(self._acked) >= self.ACK_GROUP or time.monotonic() - self._acked_since >= self.ACK_SECONDS:
                self._write_acks()

    def flush(self) -> None:
        """Write the successes not written yet (the delivery calls it when the sink returns)."""
        with self._lock:
            self._write_acks()

    def _write_acks(self) -> None:
        acked, self._acked = self._acked, []
        if acked:
            self._on_ok(acked)

    def fail(self, items: Sequence[Item], error: str) -> None:
        error = self.redactor.scrub(error)[:500]
        with self._lock:
            self._on_fail(items, error)
            for it in items:
                if it.id not in self.done:
                    self.errors[it.id] = error

    def pending(self) -> list[Item]:
        return [it for it in self.items if it.id not in self.done]


class Sink(Protocol):
    """A destination for records. Implementations live one per module, listed in SINK_KINDS."""

    kind: ClassVar[str]
    spec: SinkSpec

    def send(self, batch: Batch) -> None:
        """Deliver batch.items, reporting each through batch.ok/batch.fail; raise SinkError when nothing can go."""
        ...

    def confirm(self, items: Sequence[Item]) -> set[str]:
        """Ids among items that already reached the destination (asked after a crash mid-delivery).

        Sinks whose re-delivery is idempotent (stable keys, idempotency headers) return an empty set.
        """
        ...
