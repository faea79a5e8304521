"""The PostgreSQL ledger store, `postgresql://...` (a libpq URL): one chain in one table.

Tables (schema version in `tfaudit_meta`; `tfaudit ledger init URL` creates or migrates them):

    tfaudit_records(seq PRIMARY KEY, line, digest, record_id, time, type, run_id, actor, workspace,
                    resource_address, status)
        one row per record: `line` is the exact signed line (bytea, what verify hashes and checks),
        the other columns are copies for indexes, so `log`, `history` and an auditor's own SQL
        (`convert_from(line, 'UTF8')::jsonb` for the rest) are fast.
    tfaudit_deliveries(sink, record_id, seq, ...)   what each sink has received (tfaudit.sinks)

Appending: one transaction takes `pg_advisory_xact_lock` (held only for the append, released at
commit: never while terraform runs), reads the tail row, chains and signs the batch onto it and
inserts it. The primary key on the chain position is the guarantee: a writer that skipped the
lock (an older client) and raced would fail on it, roll back, re-read the tail and retry.

The password comes from PGPASSWORD or ~/.pgpass (libpq's own rules); a URL with a password in
it is refused, so it never lands in shell history, CI logs or records.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from tfaudit.errors import InputError, LedgerError, UsageError
from tfaudit.schema.outbox_sql import deliveries_ddl
from tfaudit.trail.ledger import seal_batch
from tfaudit.trail.store import Appended, SeqView, Tail, parsed_records
from tfaudit.trail.stores._common import (
    MAX_ATTEMPTS,
    AppendStats,
    backoff,
    lost_too_often,
    tail_of_line,
)

if TYPE_CHECKING:
    from tfaudit.trail.signing import Signer

SCHEMA_VERSION = 1
_LOCK_KEY = 0x7466617564697401  # "tfaudit" + 1: the append lock's advisory-lock id
_READ_BATCH = 2000

MIGRATIONS: dict[int, str] = {
    1: """
CREATE TABLE IF NOT EXISTS tfaudit_records (
    seq bigint PRIMARY KEY CHECK (seq > 0),
    line bytea NOT NULL,
    digest text NOT NULL,
    record_id text,
    time timestamptz,
    type text,
    run_id text,
    actor text,
    workspace text,
    resource_address text,
    status text
);
CREATE INDEX IF NOT EXISTS tfaudit_records_workspace ON tfaudit_records (workspace, seq);
CREATE INDEX IF NOT EXISTS tfaudit_records_resource ON tfaudit_records (resource_address, seq);
CREATE INDEX IF NOT EXISTS tfaudit_records_run ON tfaudit_records (run_id);
CREATE INDEX IF NOT EXISTS tfaudit_records_time ON tfaudit_records (time);
CREATE INDEX IF NOT EXISTS tfaudit_records_type ON tfaudit_records (type, seq);
CREATE TABLE IF NOT EXISTS tfaudit_sinks (
    sink text PRIMARY KEY,
    since_seq bigint NOT NULL,
    mark_seq bigint NOT NULL,
    backfill boolean NOT NULL DEFAULT false,
    delivered_total bigint NOT NULL DEFAULT 0,
    enrolled_at text NOT NULL
);
""" + deliveries_ddl("tfaudit_"),
}


def _dict(value: object) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _columns(rec: Mapping[str, Any]) -> tuple[Any, ...]:
    """(record_id, time, type, run_id, actor, workspace, resource_address, status) of a record."""
    run, actor, res, outcome = (_dict(rec.get(k)) for k in ("run", "actor", "resource", "outcome"))
    return (rec.get("id"), rec.get("time"), rec.get("type"), run.get("id"), actor.get("user") or actor.get("os_user"),
            run.get("workspace"), res.get("address"), res.get("status") or outcome.get("status"))


def display_url(conninfo: Mapping[str, str]) -> str:
    """The URL for messages: user, host, port and database; never a password."""
    user = conninfo.get("user", "")
    host = conninfo.get("host", "")
    port = conninfo.get("port", "")
    where = "" if host.startswith("/") or not host else host
    out = f"postgresql://{user + '@' if user else ''}{where}{':' + port if port and where else ''}/{conninfo.get('dbname', '')}"
    return out + (f"?host={host}" + (f"&port={port}" if port else "") if host.startswith("/") else "")


class PostgresStore:
    """The PostgreSQL store (see the module docstring)."""

    def __init__(self, conninfo: str, url: str) -> None:
        self.conninfo = conninfo
        self._url = url
        self._conn: Any = None
        self.stats = AppendStats()

    @classmethod
    def from_url(cls, url: str, env: Mapping[str, str]) -> PostgresStore:
        try:
            from psycopg.conninfo import conninfo_to_dict
        except ImportError as e:
            raise UsageError("a postgresql:// ledger needs psycopg", hint="pip install 'tfaudit[postgres]'") from e
        text = "postgresql://" + url.split("://", 1)[1]
        try:
            parts = {k: str(v) for k, v in conninfo_to_dict(text).items() if v is not None}
        except Exception as e:  # noqa: BLE001 - psycopg raises ProgrammingError for a malformed URL
            raise UsageError(f"the ledger URL is not a valid PostgreSQL URL: {str(e).splitlines()[0]}",
                             hint="use postgresql://USER@HOST:PORT/DBNAME") from None
        if parts.get("password"):
            raise UsageError("the ledger URL contains a password",
                             hint="remove it from the URL and set PGPASSWORD or use ~/.pgpass")
        parts.setdefault("connect_timeout", "10")
        parts.setdefault("application_name", "tfaudit")
        from psycopg.conninfo import make_conninfo

        return cls(make_conninfo(**parts), display_url(parts))

    def __repr__(self) -> str:
        return f"PostgresStore({self._url!r})"

    @property
    def url(self) -> str:
        return self._url

    @property
    def local_path(self) -> None:
        return None

    # -- connection ----------------------------------------------------------------------
    def connect(self) -> Any:
        if self._conn is None or self._conn.closed:
            import psycopg

            try:
                self._conn = psycopg.connect(self.conninfo, autocommit=True)
            except psycopg.Error as e:
                raise InputError(f"cannot connect to the ledger {self.url}: {str(e).strip().splitlines()[-1]}",
                                 hint="check the URL, that the server runs, and PGPASSWORD or ~/.pgpass") from e
        return self._conn

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def _errors(self) -> type[Exception]:
        import psycopg

        return psycopg.Error

    def schema_version(self) -> int:
        with self.connect().cursor() as cur:
            cur.execute("SELECT to_regclass('tfaudit_meta') IS NOT NULL")
            if not cur.fetchone()[0]:
                return 0
            cur.execute("SELECT value FROM tfaudit_meta WHERE key = 'schema_version'")
            row = cur.fetchone()
            return int(row[0]) if row else 0

    def init(self) -> tuple[int, int]:
        """Create or migrate the tables; (version before, version after)."""
        conn = self.connect()
        try:
            with conn.transaction(), conn.cursor() as cur:
                cur.execute("SELECT pg_advisory_xact_lock(%s)", (_LOCK_KEY,))
                cur.execute("CREATE TABLE IF NOT EXISTS tfaudit_meta (key text PRIMARY KEY, value text NOT NULL)")
                before = self.schema_version()
                if before > SCHEMA_VERSION:
                    raise UsageError(f"{self.url} has ledger schema version {before}; this tfaudit knows {SCHEMA_VERSION}",
                                     hint="upgrade tfaudit")
                for version in range(before + 1, SCHEMA_VERSION + 1):
                    cur.execute(MIGRATIONS[version])
                cur.execute("INSERT INTO tfaudit_meta VALUES ('schema_version', %s) ON CONFLICT (key) "
                            "DO UPDATE SET value = excluded.value", (str(SCHEMA_VERSION),))
        except self._errors() as e:
            raise LedgerError(f"cannot create the ledger tables in {self.url}: {str(e).strip()}",
                              hint="connect as a user that may create tables in that database") from e
        return before, SCHEMA_VERSION

    def _require_schema(self, *, write: bool) -> bool:
        version = self.schema_version()
        if version == SCHEMA_VERSION:
            return True
        if version == 0 and not write:
            return False
        err = LedgerError if write else InputError
        if version == 0:
            raise err(f"{self.url} has no tfaudit ledger tables", hint=f"run 'tfaudit ledger init {self.url}' once")
        raise err(f"{self.url} has ledger schema version {version}, this tfaudit needs {SCHEMA_VERSION}",
                  hint=f"run 'tfaudit ledger init {self.url}' (with this tfaudit) to migrate it")

    # -- the chain -----------------------------------------------------------------------
    def _tail(self, cur: Any) -> Tail:
        cur.execute("SELECT seq, line FROM tfaudit_records ORDER BY seq DESC LIMIT 1")
        row = cur.fetchone()
        return Tail(0, None) if row is None else tail_of_line(self.url, int(row[0]), bytes(row[1]))

    def tail(self) -> Tail:
        try:
            if not self._require_schema(write=False):
                return Tail(0, None)
            with self.connect().cursor() as cur:
                return self._tail(cur)
        except self._errors() as e:
            raise InputError(f"cannot read the ledger {self.url}: {str(e).strip()}") from e

    def exists(self) -> bool:
        return self.tail().seq > 0

    def check_writable(self) -> None:
        try:
            self.connect()
        except InputError as e:
            raise LedgerError(e.message, hint=e.hint) from e
        try:
            self._require_schema(write=True)
            with self.connect().cursor() as cur:
                cur.execute("SELECT has_table_privilege('tfaudit_records', 'INSERT')")
                if not cur.fetchone()[0]:
                    raise LedgerError(f"the database user may not insert into {self.url}",
                                      hint="GRANT INSERT, SELECT ON tfaudit_records TO that user")
                self._tail(cur)
        except self._errors() as e:
            raise LedgerError(f"cannot use the ledger {self.url}: {str(e).strip()}") from e

    def append(self, records: Sequence[Mapping[str, Any]], signer: Signer, *, lock: bool = True) -> list[Appended]:
        """Compare-and-append in one transaction (advisory lock for the append only, unique seq)."""
        if not records:
            return []
        import psycopg

        t0 = time.monotonic()
        try:
            conn = self.connect()
        except InputError as e:
            raise LedgerError(e.message, hint=e.hint) from e
        for attempt in range(MAX_ATTEMPTS):
            try:
                with conn.transaction(), conn.cursor() as cur:
                    if lock:
                        cur.execute("SELECT pg_advisory_xact_lock(%s)", (_LOCK_KEY,))
                    out = seal_batch(records, self._tail(cur), signer)
                    self._insert(cur, [a.line for a in out], [a.record for a in out], out[0].seq)
                self.stats.appends += 1
                self.stats.latencies.append(time.monotonic() - t0)
                return out
            except psycopg.errors.UniqueViolation:
                self.stats.retries += 1
                backoff(attempt)
            except psycopg.errors.UndefinedTable as e:
                raise LedgerError(f"{self.url} has no tfaudit ledger tables",
                                  hint=f"run 'tfaudit ledger init {self.url}' once") from e
            except psycopg.Error as e:
                raise LedgerError(f"cannot append to the ledger {self.url}: {str(e).strip()}",
                                  hint="nothing of this batch was written; check the server and the user's rights") from e
        raise lost_too_often(self.url, MAX_ATTEMPTS)

    @staticmethod
    def _insert(cur: Any, lines: Sequence[bytes], recs: Sequence[Mapping[str, Any]], first: int) -> None:
        from tfaudit.trail.signing import line_digest

        cur.executemany(
            "INSERT INTO tfaudit_records (seq, line, digest, record_id, time, type, run_id, actor, workspace, "
            "resource_address, status) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
            [(first + i, line, line_digest(line), *_columns(rec)) for i, (line, rec) in enumerate(zip(lines, recs))])

    def import_lines(self, lines: Sequence[bytes]) -> int:
        """Put an existing chain's exact lines in an empty store at their own positions."""
        import psycopg

        self._require_schema(write=True)
        conn = self.connect()
        try:
            with conn.transaction(), conn.cursor() as cur:
                cur.execute("SELECT pg_advisory_xact_lock(%s)", (_LOCK_KEY,))
                if self._tail(cur).seq:
                    raise UsageError(f"{self.url} already holds records",
                                     hint="import into an empty store (a new database)")
                recs = []
                for line in lines:
                    try:
                        rec = json.loads(line)
                    except ValueError:
                        rec = {}
                    recs.append(rec if isinstance(rec, dict) else {})
                for i in range(0, len(lines), _READ_BATCH):
                    self._insert(cur, [ln.rstrip(b"\n") for ln in lines[i:i + _READ_BATCH]], recs[i:i + _READ_BATCH], i + 1)
        except psycopg.Error as e:
            raise LedgerError(f"cannot import into {self.url}: {str(e).strip()}") from e
        return len(lines)

    # -- reading -------------------------------------------------------------------------
    def _select(self, sql: str, params: Sequence[Any]) -> Iterator[tuple[int, bytes]]:
        """Rows of (seq, line) from a server-side cursor on a connection of its own, in pages: memory
        stays flat, and a reader left half-way never holds a transaction the appends share."""
        import psycopg

        if not self._require_schema(write=False):
            return
        try:
            conn = psycopg.connect(self.conninfo)
        except psycopg.Error as e:
            raise InputError(f"cannot connect to the ledger {self.url}: {str(e).strip().splitlines()[-1]}") from e
        try:
            with conn.cursor(name="tfaudit_read") as cur:
                cur.itersize = _READ_BATCH
                cur.execute(sql, params)
                for seq, line in cur:
                    yield int(seq), bytes(line) + b"\n"
        except psycopg.Error as e:
            raise InputError(f"cannot read the ledger {self.url}: {str(e).strip()}") from e
        finally:
            conn.close()

    def lines(self, start: int = 1) -> Iterator[tuple[int, bytes]]:
        return self._select("SELECT seq, line FROM tfaudit_records WHERE seq >= %s ORDER BY seq", (start,))

    def lines_backward(self) -> Iterator[tuple[int, bytes]]:
        return self._select("SELECT seq, line FROM tfaudit_records ORDER BY seq DESC", ())

    def snapshot(self) -> SeqView:
        return SeqView(self)

    def records(self) -> Iterator[dict[str, Any]]:
        return parsed_records(self.lines())
