"""Deliver owed records to every configured sink, concurrently, with bounded retries.

Entry points: `enroll` (before a run writes its first record), `deliver_after_run` (the
runner's delivery hook), `deliver` (`tfaudit flush`) and `status` (`tfaudit status`).

Each sink runs in its own thread so a slow one does not hold the others; each holds its
lock file while it sends, reads what it still owes from the ledger and the outbox, asks
the sink about records left in doubt by a crash, sends, and records every outcome as it
happens. Retries live in the sinks' transports (tenacity for HTTP, botocore's standard
retry mode for AWS), bounded by `delivery.max_attempts` and `delivery.deadline_seconds`,
so a dead endpoint costs seconds. Whatever still fails stays owed.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from tfaudit.errors import (
    DeliveryError,
    ExitCode,
    InputError,
    LedgerNotFound,
    SinkError,
    TfauditError,
)
from tfaudit.logs import get_logger
from tfaudit.redact import Redactor
from tfaudit.schema import RecordType
from tfaudit.sinks.base import Batch, DeliveryConfig, Item, OnFailure, SinkSpec
from tfaudit.sinks.outbox import Outbox, Row, SinkState, sink_lock
from tfaudit.trail.store import LedgerStore, open_store, scheme_of

log = get_logger("tfaudit.delivery")

# The ledger delivery reads: a file (its outbox is sqlite beside it) or a store. A shared store
# keeps the delivery state itself, so what one runner failed to send goes out from any other.
Where = Path | LedgerStore
SHARED_OUTBOXES: dict[str, tuple[str, str, str]] = {  # store scheme -> (module, outbox class, lock function)
    "s3": ("tfaudit.sinks.outbox_s3", "S3Outbox", "s3_sink_lock"),
    "postgresql": ("tfaudit.sinks.outbox_pg", "PgOutbox", "pg_sink_lock"),
}


def _store(where: Where) -> LedgerStore:
    return open_store(where) if isinstance(where, Path) else where


def _local(where: Where) -> Path | None:
    return where if isinstance(where, Path) else where.local_path


def _shared(where: Where) -> tuple[LedgerStore, tuple[str, str, str]]:
    assert not isinstance(where, Path)
    entry = SHARED_OUTBOXES.get(scheme_of(where.url))
    if entry is None:
        raise DeliveryError(f"sinks cannot deliver from {where.url}: its store keeps no delivery state")
    return where, entry


def _outbox(where: Where) -> Any:
    """The delivery state: sqlite beside a ledger file, or the shared store's own."""
    path = _local(where)
    if path is not None:
        return Outbox(path)
    store, (mod, cls, _) = _shared(where)
    import importlib

    return getattr(importlib.import_module(mod), cls)(store)


def _lock(where: Where, sink_id: str, wait_seconds: float) -> Any:
    """One sender per sink: a lock file beside a ledger file, or the shared store's own lock."""
    path = _local(where)
    if path is not None:
        return sink_lock(path, sink_id, wait_seconds)
    store, (mod, _, fn) = _shared(where)
    import importlib

    return getattr(importlib.import_module(mod), fn)(store, sink_id, wait_seconds)


def where_name(where: Where) -> str:
    return str(where) if isinstance(where, Path) else (str(where.local_path) if where.local_path else where.url)

_JOIN_GRACE_SECONDS = 5.0


# --- reading the ledger (through its store) ----------------------------------------------------
def ledger_tail(ledger_path: Where) -> tuple[int, int]:
    """(seq of the last complete record, that position again) of the ledger; (0, 0) when it does not
    exist yet. The outbox's `mark_offset` holds a position too: reading resumes from `mark_seq`."""
    try:
        seq = _store(ledger_path).tail().seq
    except InputError as e:
        raise DeliveryError(str(e)) from e
    return seq, seq


def _loads(line: bytes) -> Any:
    # orjson: about 4x json's pace on a ledger line; what it refuses (an integer past 64 bits,
    # NaN, a lone surrogate) json reads as it always did
    try:
        return orjson.loads(line)
    except ValueError:
        return json.loads(line)


def scan(ledger_path: Where, start: int = 1) -> list[Item]:
    """Complete records from position `start` on (a torn final line is left for verify to report)."""
    items: list[Item] = []
    try:
        for n, raw in _store(ledger_path).lines(max(1, start)):
            if not raw.endswith(b"\n"):
                break
            line = raw[:-1]
            try:
                rec = _loads(line)
                int(rec["chain"]["seq"])
                str(rec["id"])
            except (ValueError, KeyError, TypeError):
                continue  # not a record: `tfaudit verify` reports it; nothing to deliver
            items.append(Item(rec, line, n))
    except LedgerNotFound:
        return items
    except InputError as e:
        raise DeliveryError(str(e)) from e
    return items


# --- what a sink owes --------------------------------------------------------------------
def _owed(item: Item, st: SinkState, spec: SinkSpec) -> bool:
    if item.seq <= st.since_seq and not st.backfill:
        return False
    return spec.filter.matches(item.record)


def _unsettled(item: Item, st: SinkState, spec: SinkSpec, rows: Mapping[str, Row]) -> bool:
    if not _owed(item, st, spec):
        return False
    if st.since_seq < item.seq <= st.mark_seq:
        return False
    row = rows.get(item.id)
    return row is None or row.state != "delivered"


def _advance(ob: Outbox, st: SinkState, spec: SinkSpec, window: Sequence[Item]) -> None:
    rows = ob.rows(spec.id, 0 if st.backfill else st.mark_seq)
    mark, offset = st.mark_seq, st.mark_offset
    for it in window:
        if it.seq <= mark:
            continue
        if _unsettled(it, st, spec, rows):
            break
        mark, offset = it.seq, it.end_offset
    if (mark, offset) != (st.mark_seq, st.mark_offset):
        ob.set_mark(spec.id, mark, offset)
    if st.backfill and not any(_unsettled(it, st, spec, rows) for it in window if it.seq <= st.since_seq):
        ob.finish_backfill(spec.id)


# --- reports -------------------------------------------------------------------------------
@dataclass
class SinkReport:
    sink: str
    attempted: int = 0
    delivered: int = 0
    confirmed: int = 0  # in-doubt records the sink already had
    pending: int = 0  # still owed after this delivery
    error: str | None = None
    seconds: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return {"sink": self.sink, "attempted": self.attempted, "delivered": self.delivered,
                "confirmed": self.confirmed, "pending": self.pending, "error": self.error,
                "seconds": round(self.seconds, 3)}


@dataclass
class DeliveryReport:
    ledger: str
    sinks: list[SinkReport] = field(default_factory=list)

    @property
    def pending(self) -> int:
        return sum(s.pending for s in self.sinks)

    @property
    def delivered(self) -> int:
        return sum(s.delivered for s in self.sinks)

    def warning(self) -> str:
        parts = [f"{s.sink}: {s.pending} ({s.error or 'not delivered'})" for s in self.sinks if s.pending]
        return (f"tfaudit: warning: {self.pending} record deliveries pending: " + "; ".join(parts)
                + f". The records are safe in the ledger {self.ledger}; run 'tfaudit flush' to retry "
                "('tfaudit status' lists them)")

    def as_dict(self) -> dict[str, Any]:
        return {"ledger": self.ledger, "delivered": self.delivered, "pending": self.pending,
                "sinks": [s.as_dict() for s in self.sinks]}


# --- delivering ---------------------------------------------------------------------------
def enroll(ledger_path: Where, specs: Iterable[SinkSpec]) -> None:
    """Owe each configured sink every record written from now on (called before a run writes)."""
    ids = [s.id for s in specs]
    if not ids:
        return
    seq, size = ledger_tail(ledger_path)
    with _outbox(ledger_path) as ob:
        ob.enroll(ids, seq, size)


_AWS_SERVICES = {"s3": "s3", "cloudwatch": "logs"}  # sink kind -> the AWS service it calls


def _warm_aws(services: Sequence[str]) -> None:
    try:
        from tfaudit import _aws

        _aws.warm(services)
    except Exception:  # noqa: BLE001 - only a head start: the sink reports real problems when it is created
        pass


def prepare(ledger_path: Where, specs: Sequence[SinkSpec], cfg: DeliveryConfig | None,
            warn: Callable[[str], None]) -> None:
    """Enroll the sinks before a run writes; an outbox that cannot be opened stops the run only
    with on_failure = "fail" (nothing has been applied yet), else it is a warning.

    AWS sinks need boto3, whose import costs about half a second, and the service models its
    clients parse (0.1-0.3 s for S3): both start now, in the background, while terraform runs,
    instead of after the apply, when the user waits."""
    services = sorted({_AWS_SERVICES[s.kind] for s in specs if s.kind in _AWS_SERVICES})
    if services:
        threading.Thread(target=_warm_aws, args=(services,), name="tfaudit-aws-warm").start()
    try:
        enroll(ledger_path, specs)
    except DeliveryError as e:
        if (cfg or DeliveryConfig()).on_failure is OnFailure.FAIL:
            raise
        warn(f"tfaudit: warning: {e}; this run's records will be in the ledger but not delivered")


class _Window:
    """The ledger records a delivery looks at, and lookups of whole runs for per-run sinks."""

    def __init__(self, ledger_path: Where, start: int) -> None:
        self.ledger_path = ledger_path
        self.start = start
        self.items = scan(ledger_path, start)
        self._full: list[Item] | None = None if start > 1 else self.items
        self._lock = threading.Lock()

    def run_items(self, run_id: str) -> list[Item]:
        mine = [it for it in self.items if it.run_id == run_id]
        if any(it.type in (RecordType.RUN_STARTED, RecordType.PLAN_RECORDED) for it in mine) or self.start <= 1:
            return mine
        with self._lock:  # the run began before the window: read the whole ledger once
            if self._full is None:
                self._full = scan(self.ledger_path, 1)
        return [it for it in self._full if it.run_id == run_id]


def deliver(ledger_path: Where, specs: Sequence[SinkSpec], cfg: DeliveryConfig | None, env: Mapping[str, str],
            redactor: Redactor | None = None, *, backfill: bool = False) -> DeliveryReport:
    """Send every owed record to every sink in specs; return what happened per sink."""
    cfg = cfg or DeliveryConfig()
    redactor = redactor or Redactor()
    report = DeliveryReport(where_name(ledger_path))
    if not specs:
        return report
    for s in specs:  # learn every sink secret before the threads start (one Redactor, shared)
        for key, name in s.settings.items():
            if key.endswith("_env") and isinstance(name, str) and env.get(name):
                redactor.learn(env[name])
    seq, size = ledger_tail(ledger_path)
    # Held open until the sinks are done: their own connections then close without SQLite's
    # checkpoint (a durable write) on the last close, which runs once, here.
    with _outbox(ledger_path) as ob:
        ob.enroll([s.id for s in specs], seq, size)  # a sink added since the run started is owed from here
        if backfill:
            for s in specs:
                ob.start_backfill(s.id)
        states = {s.id: ob.sink(s.id) for s in specs}
        start = 1 if any(st is None or st.backfill for st in states.values()) else \
            min(st.mark_seq for st in states.values() if st is not None) + 1
        report.sinks = _run_sinks(ledger_path, specs, cfg, env, redactor, _Window(ledger_path, start))
    for r in report.sinks:
        log.info("delivery.sink", sink=r.sink, delivered=r.delivered, pending=r.pending, error=r.error,
                 seconds=round(r.seconds, 3))
    return report


def _run_sinks(ledger_path: Where, specs: Sequence[SinkSpec], cfg: DeliveryConfig, env: Mapping[str, str],
               redactor: Redactor, window: _Window) -> list[SinkReport]:
    """One thread per sink, each bounded by the delivery's deadline."""
    deadline = time.monotonic() + cfg.deadline_seconds
    results: dict[str, SinkReport] = {s.id: SinkReport(s.id) for s in specs}
    threads = []
    for spec in specs:
        t = threading.Thread(target=_deliver_one, name=f"tfaudit-sink-{spec.id}", daemon=True,
                             args=(ledger_path, spec, cfg, env, redactor, window, deadline, results[spec.id]))
        t.start()
        threads.append((spec, t))
    for spec, t in threads:
        t.join(max(0.0, deadline - time.monotonic()) + _JOIN_GRACE_SECONDS)
        if t.is_alive():
            r = results[spec.id]
            r.error = r.error or f"still sending after {cfg.deadline_seconds:g}s; left in doubt, re-checked on the next flush"
            r.pending = max(r.pending, 1)
    return [results[s.id] for s in specs]


def _deliver_one(ledger_path: Where, spec: SinkSpec, cfg: DeliveryConfig, env: Mapping[str, str], redactor: Redactor,
                 window: _Window, deadline: float, report: SinkReport) -> None:
    t0 = time.monotonic()
    try:
        _send_owed(ledger_path, spec, cfg, env, redactor, window, deadline, report)
    except TfauditError as e:
        report.error = redactor.scrub(str(e))[:300]
    except Exception as e:  # noqa: BLE001 - a bug in one sink must not stop the others or the run
        log.exception("delivery.internal_error", sink=spec.id)
        report.error = redactor.scrub(f"internal error: {type(e).__name__}: {e}")[:300]
    finally:
        report.seconds = time.monotonic() - t0


def _send_owed(ledger_path: Where, spec: SinkSpec, cfg: DeliveryConfig, env: Mapping[str, str], redactor: Redactor,
               window: _Window, deadline: float, report: SinkReport) -> None:
    from tfaudit.sinks import backend

    with _outbox(ledger_path) as ob, _lock(ledger_path, spec.id, max(0.0, deadline - time.monotonic())) as got:
        st = ob.sink(spec.id)
        assert st is not None  # enrolled by deliver()
        rows = ob.rows(spec.id, 0 if st.backfill else st.mark_seq)
        owed = [it for it in window.items if _unsettled(it, st, spec, rows)]
        if not got:
            report.pending = len(owed)
            report.error = "another tfaudit process is delivering to this sink; its records stay owed"
            return
        if not owed:
            _advance(ob, st, spec, window.items)
            return

        try:
            sink = backend(spec.kind).create(spec, env, redactor=redactor, delivery=cfg)
        except SinkError as e:
            msg = redactor.scrub(str(e))[:500]
            ob.failed(spec.id, owed, msg)
            report.pending, report.error = len(owed), msg
            return

        in_doubt = [it for it in owed if (row := rows.get(it.id)) is not None and row.state == "attempting"]
        if in_doubt:
            try:
                have = sink.confirm(in_doubt)
            except TfauditError as e:
                # cannot tell whether they arrived: leave them in doubt rather than risk a duplicate
                report.pending, report.error = len(owed), redactor.scrub(str(e))[:300]
                return
            confirmed = [it for it in in_doubt if it.id in have]
            if confirmed:
                ob.delivered(spec.id, confirmed)
                report.confirmed = len(confirmed)
            owed = [it for it in owed if it.id not in have]

        batch = Batch(owed, deadline=deadline, redactor=redactor, max_attempts=cfg.max_attempts,
                      on_ok=lambda its: ob.delivered(spec.id, its),
                      on_fail=lambda its, err: ob.failed(spec.id, its, err),
                      run_items=window.run_items, record_filter=spec.filter)
        if owed:
            ob.attempting(spec.id, owed)  # committed before anything is sent: a crash leaves them in doubt
            report.attempted = len(owed)
            _send(sink, batch, spec)
        with ob.batched():  # what arrived, what failed and how far the sink is settled: one durable commit
            batch.flush()
            unreported = [it for it in batch.pending() if it.id not in batch.errors]
            if unreported:
                batch.fail(unreported, "not sent before the delivery deadline")
            _advance(ob, st, spec, window.items)
        report.delivered = len(batch.done)
        report.pending = len(batch.pending())
        if batch.errors:
            report.error = next(iter(batch.errors.values()))


def _send(sink: Any, batch: Batch, spec: SinkSpec) -> None:
    try:
        sink.send(batch)
    except TfauditError as e:
        batch.fail(batch.pending(), str(e))
    except Exception as e:  # noqa: BLE001 - see _deliver_one; record the failure per record
        log.exception("delivery.internal_error", sink=spec.id)
        batch.fail(batch.pending(), f"internal error in the {spec.kind} sink: {type(e).__name__}: {e}")
    except BaseException:
        batch.flush()  # interrupted: keep what is known to have arrived
        raise


def deliver_after_run(ledger_path: Where, specs: Sequence[SinkSpec], cfg: DeliveryConfig | None,
                      env: Mapping[str, str], redactor: Redactor, warn: Callable[[str], None]) -> int:
    """The runner's hook: deliver, warn on anything left owed; exit 4 for on_failure = "fail"."""
    cfg = cfg or DeliveryConfig()
    try:
        report = deliver(ledger_path, specs, cfg, env, redactor)
    except TfauditError as e:
        # the records are in the ledger; delivery state could not even be read
        warn(f"tfaudit: warning: delivery did not run: {redactor.scrub(str(e))}; the records are safe in the ledger "
             f"{where_name(ledger_path)}; run 'tfaudit flush' to retry")
        return int(ExitCode.AUDIT_WRITE) if cfg.on_failure is OnFailure.FAIL else 0
    if report.pending:
        warn(report.warning())
        return int(ExitCode.AUDIT_WRITE) if cfg.on_failure is OnFailure.FAIL else 0
    return 0


# --- status -----------------------------------------------------------------------------------
@dataclass
class SinkStatus:
    sink: str
    enrolled: bool
    since_seq: int | None = None
    settled_through_seq: int | None = None
    delivered_total: int = 0
    pending: int = 0
    in_doubt: int = 0
    failed: int = 0
    oldest_pending_seq: int | None = None
    oldest_pending_time: str | None = None
    last_error: str | None = None
    last_error_at: str | None = None
    backfill: bool = False

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def status(ledger_path: Where, specs: Sequence[SinkSpec], redactor: Redactor | None = None) -> list[SinkStatus]:
    redactor = redactor or Redactor()
    out: list[SinkStatus] = []
    with _outbox(ledger_path) as ob:
        states = {s.id: ob.sink(s.id) for s in specs}
        known = [st for st in states.values() if st is not None]
        start = 1 if any(st.backfill for st in known) or not known else min(st.mark_seq for st in known) + 1
        items = scan(ledger_path, start) if known else []
        for spec in specs:
            st = states[spec.id]
            if st is None:
                out.append(SinkStatus(spec.id, enrolled=False))
                continue
            rows = ob.rows(spec.id, 0 if st.backfill else st.mark_seq)
            owed = [it for it in items if _unsettled(it, st, spec, rows)]
            err = ob.last_error(spec.id)
            s = SinkStatus(spec.id, True, st.since_seq, st.mark_seq, st.delivered_total, len(owed),
                           sum(1 for it in owed if (r := rows.get(it.id)) is not None and r.state == "attempting"),
                           sum(1 for it in owed if (r := rows.get(it.id)) is not None and r.state == "failed"),
                           backfill=st.backfill)
            if owed:
                s.oldest_pending_seq, s.oldest_pending_time = owed[0].seq, str(owed[0].record.get("time"))
                if err:
                    s.last_error, s.last_error_at = redactor.scrub(err[0]), err[1]
            out.append(s)
    return out
