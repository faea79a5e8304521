"""Delivery state in a PostgreSQL ledger store: the sqlite outbox's tables, shared by every runner.

Same rows and states as tfaudit.sinks.outbox (see there); positions stand in for byte offsets
(`mark_offset` is `mark_seq`). One sender per sink at a time, across machines: a session-level
advisory lock on a connection of its own, held while that sink is being sent to.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from tfaudit.errors import DeliveryError
from tfaudit.schema.outbox_sql import mark_delivered, mark_failed
from tfaudit.sinks.base import Item
from tfaudit.sinks.outbox import Row, SinkState, now_text
from tfaudit.trail.stores.postgres import PostgresStore

_MARK_DELIVERED = mark_delivered("tfaudit_", "%s")
_MARK_FAILED = mark_failed("tfaudit_", "%s")


class PgOutbox:
    def __init__(self, store: PostgresStore) -> None:
        import psycopg

        self.store = store
        self.path = store.url
        try:
            self._db = psycopg.connect(store.conninfo, autocommit=True)
        except psycopg.Error as e:
            raise DeliveryError(f"cannot open the delivery state in {store.url}: {str(e).strip()}") from e

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> PgOutbox:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def _tx(self) -> Iterator[Any]:
        import psycopg

        try:
            with self._db.transaction(), self._db.cursor() as cur:
                yield cur
        except psycopg.Error as e:
            raise DeliveryError(f"cannot update the delivery state in {self.path}: {str(e).strip()}") from e

    @contextmanager
    def batched(self) -> Iterator[None]:
        """Run the updates made inside as one transaction (psycopg nests theirs as savepoints)."""
        import psycopg

        try:
            with self._db.transaction():
                yield
        except psycopg.Error as e:
            raise DeliveryError(f"cannot update the delivery state in {self.path}: {str(e).strip()}") from e

    def enroll(self, sink_ids: Iterable[str], tail_seq: int, tail_offset: int) -> None:
        with self._tx() as cur:
            for sid in sink_ids:
                cur.execute("INSERT INTO tfaudit_sinks (sink, since_seq, mark_seq, enrolled_at) VALUES (%s, %s, %s, %s) "
                            "ON CONFLICT (sink) DO NOTHING", (sid, tail_seq, tail_seq, now_text()))

    def start_backfill(self, sink_id: str) -> None:
        with self._tx() as cur:
            cur.execute("UPDATE tfaudit_sinks SET backfill = true WHERE sink = %s AND since_seq > 0", (sink_id,))

    def finish_backfill(self, sink_id: str) -> None:
        with self._tx() as cur:
            cur.execute("UPDATE tfaudit_sinks SET since_seq = 0, backfill = false WHERE sink = %s", (sink_id,))

    def sink(self, sink_id: str) -> SinkState | None:
        with self._tx() as cur:
            cur.execute("SELECT sink, since_seq, mark_seq, backfill, delivered_total, enrolled_at FROM tfaudit_sinks "
                        "WHERE sink = %s", (sink_id,))
            row = cur.fetchone()
        if row is None:
            return None
        return SinkState(row[0], int(row[1]), int(row[2]), int(row[2]), bool(row[3]), int(row[4]), row[5])

    def set_mark(self, sink_id: str, seq: int, offset: int) -> None:
        with self._tx() as cur:
            cur.execute("UPDATE tfaudit_sinks SET mark_seq = %s WHERE sink = %s", (seq, sink_id))
            cur.execute("DELETE FROM tfaudit_deliveries WHERE sink = %s AND state = 'delivered' AND seq <= %s AND seq > "
                        "(SELECT since_seq FROM tfaudit_sinks WHERE sink = %s)", (sink_id, seq, sink_id))

    def rows(self, sink_id: str, min_seq: int = 0) -> dict[str, Row]:
        with self._tx() as cur:
            cur.execute("SELECT record_id, seq, state, attempts, last_error, last_attempt_at FROM tfaudit_deliveries "
                        "WHERE sink = %s AND seq > %s", (sink_id, min_seq))
            return {r[0]: Row(r[0], int(r[1]), r[2], int(r[3]), r[4], r[5]) for r in cur.fetchall()}

    def attempting(self, sink_id: str, items: Sequence[Item]) -> None:
        now = now_text()
        with self._tx() as cur:
            cur.executemany(
                "INSERT INTO tfaudit_deliveries (sink, record_id, seq, run_id, state, attempts, first_attempt_at, "
                "last_attempt_at) VALUES (%s, %s, %s, %s, 'attempting', 1, %s, %s) ON CONFLICT (sink, record_id) DO UPDATE "
                "SET state = 'attempting', attempts = tfaudit_deliveries.attempts + 1, last_attempt_at = excluded.last_attempt_at",
                [(sink_id, it.id, it.seq, it.run_id, now, now) for it in items])

    def delivered(self, sink_id: str, items: Sequence[Item]) -> None:
        now = now_text()
        with self._tx() as cur:
            fresh = 0
            for it in items:
                cur.execute(_MARK_DELIVERED,
                            (sink_id, it.id, it.seq, it.run_id, now, now, now))
                fresh += cur.rowcount
            cur.execute("UPDATE tfaudit_sinks SET delivered_total = delivered_total + %s WHERE sink = %s", (fresh, sink_id))

    def failed(self, sink_id: str, items: Sequence[Item], error: str) -> None:
        now = now_text()
        with self._tx() as cur:
            cur.executemany(
                _MARK_FAILED,
                [(sink_id, it.id, it.seq, it.run_id, error, now, now) for it in items])

    def last_error(self, sink_id: str) -> tuple[str, str] | None:
        with self._tx() as cur:
            cur.execute("SELECT last_error, last_attempt_at FROM tfaudit_deliveries WHERE sink = %s AND state = 'failed' "
                        "ORDER BY last_attempt_at DESC LIMIT 1", (sink_id,))
            row = cur.fetchone()
        return (row[0], row[1]) if row and row[0] else None


@contextmanager
def pg_sink_lock(store: PostgresStore, sink_id: str, wait_seconds: float) -> Iterator[bool]:
    """One sender per sink across machines: a session advisory lock on its own connection."""
    import psycopg

    try:
        conn = psycopg.connect(store.conninfo, autocommit=True)
    except psycopg.Error as e:
        raise DeliveryError(f"cannot lock the sink {sink_id} in {store.url}: {str(e).strip()}") from e
    key = "tfaudit-sink:" + sink_id
    try:
        end = time.monotonic() + wait_seconds
        while True:
            row = conn.execute("SELECT pg_try_advisory_lock(hashtext(%s))", (key,)).fetchone()
            got = bool(row and row[0])
            if got or time.monotonic() >= end:
                break
            time.sleep(0.1)
        yield bool(got)
    finally:
        conn.close()  # the session ends: its advisory lock goes with it
