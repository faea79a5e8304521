"""Per-record, per-sink delivery state, kept durably beside the ledger.

Where: `<ledger>.outbox/state.sqlite` plus one lock file per sink in the same directory.

Why SQLite rather than a directory of marker files: every state change (attempting,
delivered, failed) is one atomic, fsynced transaction; several tfaudit processes can
update it at once (WAL, busy timeout); `tfaudit status` is a query, not a walk over
thousands of files; and a crash at any instant leaves either the old or the new state.
The per-sink lock files (flock) keep two processes from sending the same records to the
same sink at once.

The ledger itself is the queue. A sink is *enrolled* before a run writes anything
(`since_seq` = the ledger's last seq then); every later record its filter accepts is owed
to it until a `delivered` row says otherwise. Nothing needs to be copied into the outbox
between the ledger write and delivery, so a crash there loses nothing: the next run or
`tfaudit flush` finds the records still owed. `mark_seq`/`mark_offset` remember how far
every owed record is settled, so a delivery reads only the ledger's tail; delivered rows
at or below the mark are folded into a counter.

Row states: `attempting` is written before a send and replaced by `delivered` or `failed`
after it; an `attempting` row found later (with the sink's lock held) means a process
died mid-send: the record is *in doubt* and the sink is asked whether it already has it.
"""

from __future__ import annotations

import fcntl
import os
import sqlite3
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from tfaudit.errors import DeliveryError
from tfaudit.schema.outbox_sql import deliveries_ddl, mark_delivered, mark_failed
from tfaudit.sinks.base import Item

SCHEMA_VERSION = "1"
_MARK_DELIVERED = mark_delivered("", "?")
_MARK_FAILED = mark_failed("", "?")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS sinks(
    sink TEXT PRIMARY KEY,
    since_seq INTEGER NOT NULL,
    mark_seq INTEGER NOT NULL,
    mark_offset INTEGER NOT NULL,
    backfill INTEGER NOT NULL DEFAULT 0,
    delivered_total INTEGER NOT NULL DEFAULT 0,
    enrolled_at TEXT NOT NULL
);
"""


def outbox_dir(ledger_path: Path) -> Path:
    return ledger_path.with_name(ledger_path.name + ".outbox")


def now_text() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@dataclass(frozen=True)
class SinkState:
    sink: str
    since_seq: int
    mark_seq: int
    mark_offset: int
    backfill: bool
    delivered_total: int
    enrolled_at: str


@dataclass(frozen=True)
class Row:
    record_id: str
    seq: int
    state: str
    attempts: int
    last_error: str | None
    last_attempt_at: str | None


class Outbox:
    """One connection to the outbox database; use one instance per thread."""

    def __init__(self, ledger_path: Path) -> None:
        self.dir = outbox_dir(ledger_path)
        self.path = self.dir / "state.sqlite"
        self._depth = 0
        try:
            self.dir.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(self.path, timeout=15.0, isolation_level=None)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            if self._schema_version() != SCHEMA_VERSION:  # the script commits: a durable write, so only when needed
                self._db.executescript(_SCHEMA + deliveries_ddl())
                self._db.execute("INSERT OR IGNORE INTO meta VALUES ('schema_version', ?)", (SCHEMA_VERSION,))
        except (OSError, sqlite3.Error) as e:
            raise DeliveryError(f"cannot open the delivery outbox {self.path}: {e}",
                                hint="check the ledger directory is writable") from e

    def _schema_version(self) -> str | None:
        try:
            row = self._db.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
        except sqlite3.OperationalError:
            return None  # a new outbox: no meta table yet
        return str(row[0]) if row else None

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> Outbox:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def batched(self) -> Iterator[None]:
        """Run the updates made inside as one transaction: one durable commit, not one per update."""
        with self._tx():
            self._depth += 1
            try:
                yield
            finally:
                self._depth -= 1

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        if self._depth:  # inside batched(): part of its transaction
            yield self._db
            return
        try:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")
        except sqlite3.Error as e:
            raise DeliveryError(f"cannot update the delivery outbox {self.path}: {e}") from e

    # -- sinks ------------------------------------------------------------------
    def enroll(self, sink_ids: Iterable[str], tail_seq: int, tail_offset: int) -> None:
        """Owe every record after tail_seq to each sink not enrolled yet."""
        with self._tx() as db:
            for sid in sink_ids:
                db.execute("INSERT OR IGNORE INTO sinks(sink, since_seq, mark_seq, mark_offset, enrolled_at) "
                           "VALUES (?, ?, ?, ?, ?)", (sid, tail_seq, tail_seq, tail_offset, now_text()))

    def start_backfill(self, sink_id: str) -> None:
        """Owe the sink the records before its enrollment too (they are scanned from the ledger's start)."""
        with self._tx() as db:
            db.execute("UPDATE sinks SET backfill = 1 WHERE sink = ? AND since_seq > 0", (sink_id,))

    def finish_backfill(self, sink_id: str) -> None:
        with self._tx() as db:
            db.execute("UPDATE sinks SET since_seq = 0, backfill = 0 WHERE sink = ?", (sink_id,))

    def sink(self, sink_id: str) -> SinkState | None:
        row = self._db.execute("SELECT sink, since_seq, mark_seq, mark_offset, backfill, delivered_total, enrolled_at "
                               "FROM sinks WHERE sink = ?", (sink_id,)).fetchone()
        if row is None:
            return None
        return SinkState(row[0], row[1], row[2], row[3], bool(row[4]), row[5], row[6])

    def all_sinks(self) -> list[SinkState]:
        rows = self._db.execute("SELECT sink FROM sinks ORDER BY sink").fetchall()
        return [s for (sid,) in rows if (s := self.sink(sid)) is not None]

    def set_mark(self, sink_id: str, seq: int, offset: int) -> None:
        """Everything owed up to seq is settled: fold delivered rows there into the counter."""
        with self._tx() as db:
            db.execute("UPDATE sinks SET mark_seq = ?, mark_offset = ? WHERE sink = ?", (seq, offset, sink_id))
            # rows at or below since_seq belong to an unfinished backfill: keep them until it ends
            db.execute("DELETE FROM deliveries WHERE sink = ? AND state = 'delivered' AND seq <= ? AND seq > "
                       "(SELECT since_seq FROM sinks WHERE sink = ?)", (sink_id, seq, sink_id))

    # -- records ------------------------------------------------------------------
    def rows(self, sink_id: str, min_seq: int = 0) -> dict[str, Row]:
        cur = self._db.execute("SELECT record_id, seq, state, attempts, last_error, last_attempt_at FROM deliveries "
                               "WHERE sink = ? AND seq > ?", (sink_id, min_seq))
        return {r[0]: Row(*r) for r in cur.fetchall()}

    def attempting(self, sink_id: str, items: Sequence[Item]) -> None:
        now = now_text()
        with self._tx() as db:
            db.executemany(
                "INSERT INTO deliveries(sink, record_id, seq, run_id, state, attempts, first_attempt_at, last_attempt_at) "
                "VALUES (?, ?, ?, ?, 'attempting', 1, ?, ?) "
                "ON CONFLICT(sink, record_id) DO UPDATE SET state = 'attempting', attempts = attempts + 1, "
                "last_attempt_at = excluded.last_attempt_at",
                [(sink_id, it.id, it.seq, it.run_id, now, now) for it in items])

    def delivered(self, sink_id: str, items: Sequence[Item]) -> None:
        now = now_text()
        with self._tx() as db:
            # executemany sums the rows each upsert changed: the records not delivered before
            fresh = db.executemany(_MARK_DELIVERED, [(sink_id, it.id, it.seq, it.run_id, now, now, now)
                                                     for it in items]).rowcount
            db.execute("UPDATE sinks SET delivered_total = delivered_total + ? WHERE sink = ?", (fresh, sink_id))

    def failed(self, sink_id: str, items: Sequence[Item], error: str) -> None:
        now = now_text()
        with self._tx() as db:
            db.executemany(
                _MARK_FAILED,
                [(sink_id, it.id, it.seq, it.run_id, error, now, now) for it in items])

    def last_error(self, sink_id: str) -> tuple[str, str] | None:
        row = self._db.execute("SELECT last_error, last_attempt_at FROM deliveries WHERE sink = ? AND state = 'failed' "
                               "ORDER BY last_attempt_at DESC LIMIT 1", (sink_id,)).fetchone()
        return (row[0], row[1]) if row and row[0] else None


# --- one sender per sink at a time, across processes ----------------------------------
@contextmanager
def sink_lock(ledger_path: Path, sink_id: str, wait_seconds: float) -> Iterator[bool]:
    """Hold the sink's lock file; yields False if another process kept it for wait_seconds."""
    d = outbox_dir(ledger_path)
    d.mkdir(parents=True, exist_ok=True)
    fd = os.open(d / f"{sink_id}.lock", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        end = time.monotonic() + wait_seconds
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= end:
                    yield False
                    return
                time.sleep(0.05)
        yield True
    finally:
        os.close(fd)
