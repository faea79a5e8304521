"""The SQL of delivery state (what each sink has received), one text for both engines.

The local outbox (SQLite, `tfaudit.sinks.outbox`) and a PostgreSQL ledger store
(`tfaudit.trail.stores.postgres`, read by `tfaudit.sinks.outbox_pg`) keep the same
`deliveries` table; only the table prefix and the parameter style differ. Both engines
accept this DDL (SQLite reads `bigint` with integer affinity) and the upserts (SQLite
3.24+ `ON CONFLICT ... DO UPDATE ... WHERE`).
"""

from __future__ import annotations

_DELIVERIES_DDL = """CREATE TABLE IF NOT EXISTS {t}deliveries (
    sink text NOT NULL,
    record_id text NOT NULL,
    seq bigint NOT NULL,
    run_id text,
    state text NOT NULL CHECK (state IN ('attempting', 'failed', 'delivered')),
    attempts integer NOT NULL DEFAULT 0,
    last_error text,
    first_attempt_at text,
    last_attempt_at text,
    delivered_at text,
    PRIMARY KEY (sink, record_id)
);
CREATE INDEX IF NOT EXISTS {t}deliveries_by_seq ON {t}deliveries (sink, seq);
"""

_MARK_DELIVERED = (
    "INSERT INTO {t}deliveries (sink, record_id, seq, run_id, state, attempts, first_attempt_at, last_attempt_at, "
    "delivered_at) VALUES ({p}, {p}, {p}, {p}, 'delivered', 1, {p}, {p}, {p}) ON CONFLICT (sink, record_id) DO UPDATE "
    "SET state = 'delivered', delivered_at = excluded.delivered_at, last_error = NULL "
    "WHERE {t}deliveries.state != 'delivered'")

_MARK_FAILED = (
    "INSERT INTO {t}deliveries (sink, record_id, seq, run_id, state, attempts, last_error, first_attempt_at, "
    "last_attempt_at) VALUES ({p}, {p}, {p}, {p}, 'failed', 1, {p}, {p}, {p}) ON CONFLICT (sink, record_id) DO UPDATE "
    "SET state = 'failed', last_error = excluded.last_error WHERE {t}deliveries.state != 'delivered'")


def deliveries_ddl(prefix: str = "") -> str:
    return _DELIVERIES_DDL.format(t=prefix)


def mark_delivered(prefix: str, placeholder: str) -> str:
    """Upsert one record as delivered; changes a row (rowcount 1) only when it was not delivered before.
    Parameters: sink, record id, seq, run id, then the time three times."""
    return _MARK_DELIVERED.format(t=prefix, p=placeholder)


def mark_failed(prefix: str, placeholder: str) -> str:
    """Upsert one record as failed, never downgrading a delivered one.
    Parameters: sink, record id, seq, run id, error, then the time twice."""
    return _MARK_FAILED.format(t=prefix, p=placeholder)
