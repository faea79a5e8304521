"""The run index: which runs a file ledger holds and where their records are, so `tfaudit log`
and `tfaudit history` read the index plus the records they print, not the whole ledger.

A cache beside the ledger (`LEDGER.runs`), an SQLite database (the standard library's: one
file, written incrementally, looked up by address without being loaded whole). It lists, per
run, its time, actor names, workspace and outcome and the positions of the records its
summary is built from (`run.started`, `run.finished`, ...: every record of the run except the
`resource.changed` ones that add nothing to it); per address, the records that changed it;
per run, its last `run.finished`. For each such record it keeps the byte offset, length and
SHA-256 of its line. It covers the ledger up to a byte offset and keeps the digest of the
line that ends there: each use checks that line and reads only the lines after it; a
missing, unreadable, foreign or stale index is rebuilt from the start, silently.

Nothing it says is believed: every record an answer is built from is read back at its offset
and must have the digest the index holds, and the answer is then built from those records by
the same code as a full scan (`tfaudit.query.add_record`, `tfaudit.query.history.pick`); an index
that disagrees with the ledger is rebuilt once, and failing that, for shared stores, several
ledgers at once, or a torn tail, the commands read the whole ledger as before. What an index
could still get wrong is only what it leaves out (as with the plan index, `LEDGER.plans`).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import sqlite3
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from tfaudit.query.history import addresses_in, run_key
from tfaudit.query import Progress, RunSummary, _obj, actor_names, add_record
from tfaudit.schema import RecordType
from tfaudit.trail.jsonline import BadLine, parse_line
from tfaudit.trail.ledger import FileView

VERSION = 1
_APP_ID = 0x74666169  # "tfai": PRAGMA application_id, so a foreign database is told apart
_FLUSH = 20_000  # lines buffered between inserts while building
_SCHEMA = """
CREATE TABLE meta (end_off INTEGER NOT NULL, last_off INTEGER NOT NULL, last_len INTEGER NOT NULL,
                   last_digest BLOB, lines INTEGER NOT NULL);
CREATE TABLE ids (id TEXT PRIMARY KEY) WITHOUT ROWID;
CREATE TABLE lines (pos INTEGER PRIMARY KEY, off INTEGER NOT NULL, len INTEGER NOT NULL, digest BLOB NOT NULL);
CREATE TABLE runs (run TEXT PRIMARY KEY, time TEXT NOT NULL, status TEXT NOT NULL, workspace TEXT NOT NULL,
                   actors TEXT NOT NULL, first_time TEXT NOT NULL);
CREATE INDEX runs_by_time ON runs (time DESC, run DESC);
CREATE TABLE needs (run TEXT NOT NULL, pos INTEGER NOT NULL, PRIMARY KEY (run, pos)) WITHOUT ROWID;
CREATE TABLE changes (address TEXT NOT NULL, pos INTEGER NOT NULL, prev TEXT);
CREATE INDEX changes_by_address ON changes (address);
CREATE TABLE finished (run TEXT PRIMARY KEY, pos INTEGER NOT NULL) WITHOUT ROWID;
"""
Line = tuple[int, int, bytes]  # (byte offset, length without the newline, sha256 of the line)


class Unavailable(Exception):
    """No index for this read (it cannot be written, or the ledger ends in a torn line): scan instead."""


class Untrusted(Exception):
    """The index disagrees with the ledger (stale, damaged, foreign or tampered with)."""


class Ahead(Exception):
    """The index covers more than this snapshot: another reader indexed lines appended since it was taken."""


def _digest(line: bytes) -> bytes:
    return hashlib.sha256(line).digest()


def read_back(view: FileView, lines: Sequence[Line]) -> list[dict[str, Any]]:
    """The records on these lines, each checked: a whole line at that offset, with that digest."""
    raws = view.read_at((off - 1, n + 2) if off else (0, n + 1) for off, n, _ in lines)
    out = []
    for (off, n, digest), raw in zip(lines, raws):
        line = raw[1:-1] if off else raw[:-1]
        if (off and raw[:1] != b"\n") or raw[-1:] != b"\n" or len(line) != n or _digest(line) != digest:
            raise Untrusted(f"no such line at byte {off}")
        try:
            rec = json.loads(line)  # the very bytes the strict reader accepted when the index was built
        except ValueError:
            raise Untrusted(f"the line at byte {off} is not JSON") from None
        if not isinstance(rec, dict):
            raise Untrusted(f"the line at byte {off} is not a record")
        out.append(rec)
    return out


def _blank_bulk(summary: RunSummary) -> None:
    """Drop the records a summary keeps (the index needs their count, not their bodies)."""
    summary.records[-1] = {}
    if summary.resources:
        summary.resources[-1] = {}


class _Indexer:
    """Adds lines to an index: one pass, buffered inserts, run summaries kept in memory."""

    def __init__(self, conn: sqlite3.Connection, view: FileView, lines: int, fresh: bool) -> None:
        self.conn, self.view, self.pos, self.fresh = conn, view, lines, fresh
        self.summaries: dict[str, RunSummary] = {}
        self.first_time: dict[str, str] = {}
        self.seen: set[str] = set()
        self.end: tuple[int, int, bytes] | None = None
        self.rows: dict[str, list[tuple[Any, ...]]] = {"lines": [], "ids": [], "needs": [], "changes": []}
        self.finished: dict[str, int] = {}

    def add(self, spans: Iterable[tuple[int, bytes]], progress: Progress) -> bool:
        """Index these lines; False when the ledger ends in a torn line (left out)."""
        complete = True
        for off, raw in spans:
            progress.advance(len(raw))
            if not raw.endswith(b"\n"):
                if off + len(raw) >= self.view.size:
                    complete = False  # a torn last line: not a record yet (`tfaudit ledger repair`)
                    break
                self.pos += 1  # an over-long line, cut: never a record
                continue
            self.pos += 1
            line = raw[:-1]
            self.end = (off, len(line), _digest(line))
            try:
                rec = parse_line(line)
            except BadLine:
                continue  # as the scan does: `tfaudit verify` reports these
            self._record(rec)
            if len(self.rows["lines"]) >= _FLUSH:
                self._flush()
        self._flush()
        self._save_runs()
        return complete

    def _record(self, rec: dict[str, Any]) -> None:
        rid = rec.get("id")
        if isinstance(rid, str):
            if rid in self.seen or (not self.fresh and self.conn.execute(
                    "SELECT 1 FROM ids WHERE id = ?", (rid,)).fetchone()):
                return  # a record id seen before counts once, as in the scan
            self.seen.add(rid)
            self.rows["ids"].append((rid,))
        assert self.end is not None
        wanted = self._run_record(rec)
        for address, prev in addresses_in(rec):
            self.rows["changes"].append((address, self.pos, prev))
            wanted = True
        if rec.get("type") == RecordType.RUN_FINISHED:
            self.finished[run_key(rec)] = self.pos
            wanted = True
        if wanted:
            self.rows["lines"].append((self.pos, *self.end))

    def _run_record(self, rec: dict[str, Any]) -> bool:
        """Fold a record into its run's summary when it adds to it; whether it did."""
        run = _obj(rec, "run").get("id")
        if not isinstance(run, str):
            return False
        known = self._summary(run)
        if known and rec.get("type") == RecordType.RESOURCE_CHANGED and not (
                rec.get("findings") or _obj(rec, "resource").get("findings")
                or (rec.get("time") and str(rec["time"]) < self.first_time[run])):
            return False  # adds nothing to the summary: history finds it through `changes`
        if not known:
            self.first_time[run] = str(rec.get("time", ""))
        add_record(self.summaries, "", rec)
        _blank_bulk(self.summaries[run])
        self.rows["needs"].append((run, self.pos))
        return True

    def _summary(self, run: str) -> bool:
        """Whether the run is known: in memory, or in the index (then its summary is rebuilt
        from its records, read back from the ledger)."""
        if run in self.summaries:
            return True
        if self.fresh:
            return False
        row = self.conn.execute("SELECT first_time FROM runs WHERE run = ?", (run,)).fetchone()
        if row is None:
            return False
        for rec in read_back(self.view, needed_lines(self.conn, [run])):
            add_record(self.summaries, "", rec)
            _blank_bulk(self.summaries[run])
        if run not in self.summaries:
            raise Untrusted(f"run {run} has no records")
        self.first_time[run] = str(row[0])
        return True

    def _flush(self) -> None:
        ex = self.conn.executemany
        ex("INSERT INTO lines VALUES (?, ?, ?, ?)", self.rows["lines"])
        ex("INSERT INTO ids VALUES (?)", self.rows["ids"])
        ex("INSERT INTO needs VALUES (?, ?)", self.rows["needs"])
        ex("INSERT INTO changes VALUES (?, ?, ?)", self.rows["changes"])
        for rows in self.rows.values():
            rows.clear()

    def _save_runs(self) -> None:
        self.conn.executemany("INSERT OR REPLACE INTO finished VALUES (?, ?)", self.finished.items())
        self.conn.executemany("INSERT OR REPLACE INTO runs VALUES (?, ?, ?, ?, ?, ?)", (
            (run, s.time, s.status, s.workspace, json.dumps(actor_names(s)), self.first_time[run])
            for run, s in self.summaries.items()))
        if self.end is not None:
            off, n, digest = self.end
            self.conn.execute("UPDATE meta SET end_off = ?, last_off = ?, last_len = ?, last_digest = ?, lines = ?",
                              (off + n + 1, off, n, digest, self.pos))


def needed_lines(conn: sqlite3.Connection, runs: Sequence[str]) -> list[Line]:
    """The lines the summaries of these runs are built from, in ledger order."""
    marks = ",".join("?" * len(runs))
    return [(off, n, digest) for off, n, digest in conn.execute(
        f"SELECT l.off, l.len, l.digest FROM needs n JOIN lines l ON l.pos = n.pos WHERE n.run IN ({marks}) "
        "ORDER BY l.pos", list(runs))]


def _update(conn: sqlite3.Connection, view: FileView, progress: Progress) -> bool:
    """Bring an index up to the view: check the line it ends at, then add the lines after it."""
    version, app = (conn.execute(f"PRAGMA {p}").fetchone()[0] for p in ("user_version", "application_id"))
    row = conn.execute("SELECT end_off, last_off, last_len, last_digest, lines FROM meta").fetchone()
    if (version, app) != (VERSION, _APP_ID) or row is None:
        raise Untrusted("not a run index of this version")
    end, last_off, last_len, last_digest, lines = row
    if end > view.size:
        raise Ahead(f"the index ends at byte {end}, the snapshot at {view.size}")
    if end and (end != last_off + last_len + 1 or read_back_raw(view, last_off, last_len) != last_digest):
        raise Untrusted("the line the index ends at is not there")
    if end == view.size:
        return True
    progress.add_total(view.size - end)
    return _Indexer(conn, view, lines, fresh=False).add(view.spans(end), progress)


def read_back_raw(view: FileView, off: int, n: int) -> bytes | None:
    raw = view.read_at([(off, n + 1)])[0]
    return _digest(raw[:-1]) if raw[-1:] == b"\n" and len(raw) == n + 1 else None


def _connect(path: Path) -> sqlite3.Connection:
    return sqlite3.connect(path, timeout=10, isolation_level=None)


@contextlib.contextmanager
def _transaction(conn: sqlite3.Connection, how: str = "IMMEDIATE") -> Iterator[None]:
    conn.execute(f"BEGIN {how}")
    try:
        yield
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


def _build(path: Path, view: FileView, progress: Progress) -> bool:
    """A new index over the whole view, written beside the old one and renamed over it."""
    tmp = path.with_name(f"{path.name}.tmp-{os.getpid()}")
    with contextlib.suppress(OSError):
        tmp.unlink()
    try:
        # created as the plan index is (0666 less the umask), before SQLite opens it
        os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
        conn = _connect(tmp)
        try:
            conn.executescript(f"PRAGMA journal_mode = OFF; PRAGMA synchronous = OFF; {_SCHEMA}"
                               f"PRAGMA user_version = {VERSION}; PRAGMA application_id = {_APP_ID};")
            progress.add_total(view.size)
            with _transaction(conn, "EXCLUSIVE"):
                conn.execute("INSERT INTO meta VALUES (0, 0, 0, NULL, 0)")
                complete = _Indexer(conn, view, 0, fresh=True).add(view.spans(0), progress)
        finally:
            conn.close()
        fd = os.open(tmp, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except (OSError, sqlite3.Error) as e:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise Unavailable(f"cannot write the run index {path}: {e}") from e
    return complete


@contextlib.contextmanager
def opened(path: Path, view: FileView, progress: Progress, *, rebuild: bool = False) -> Iterator[sqlite3.Connection]:
    """The index at path, brought up to the view (rebuilt when missing, stale or damaged)."""
    complete = None
    if not rebuild and path.is_file() and not path.is_symlink():  # SQLite writes in place: never through a link
        conn = _connect(path)
        try:
            with _transaction(conn):
                complete = _update(conn, view, progress)
        except (Untrusted, sqlite3.Error):
            conn.close()
        except Ahead:
            conn.close()
            raise
    if complete is None:
        complete = _build(path, view, progress)
        conn = _connect(path)
    try:
        if not complete:
            raise Unavailable("the ledger ends in a torn line")
        yield conn
    finally:
        conn.close()


def index_path(ledger: Path) -> Path:
    """`LEDGER.runs`, beside the ledger (as the plan index is `LEDGER.plans`)."""
    return ledger.with_name(f"{ledger.name}.runs")


def runs_in_order(conn: sqlite3.Connection) -> list[tuple[str, str, str, str, list[str]]]:
    """(run, time, status, workspace, actor names) newest first, as the index holds them."""
    rows = conn.execute("SELECT run, time, status, workspace, actors FROM runs ORDER BY time DESC, run DESC").fetchall()
    try:  # one decode for every run's names (each is a JSON array the index wrote)
        names = json.loads("[" + ",".join(str(r[4]) for r in rows) + "]")
    except ValueError:
        raise Untrusted("the index's actor names are not JSON") from None
    if len(names) != len(rows) or not all(isinstance(n, list) for n in names):
        raise Untrusted("the index's actor names are not lists")
    return [(run, time, status, workspace, n) for (run, time, status, workspace, _), n in zip(rows, names)]


def summaries(conn: sqlite3.Connection, view: FileView, source: str, runs: Sequence[str]) -> dict[str, RunSummary]:
    """These runs' summaries, built from their records as read back from the ledger."""
    by_id: dict[str, RunSummary] = {}
    wanted = set(runs)
    for rec in read_back(view, needed_lines(conn, runs)):
        if _obj(rec, "run").get("id") not in wanted:
            raise Untrusted("a record the index lists belongs to another run")
        add_record(by_id, source, rec)
    return by_id


def _rows_for(conn: sqlite3.Connection, query: str, column: str, values: Iterable[str]) -> Iterator[Any]:
    """The rows of `query WHERE column IN (values)`, asked for the distinct values in chunks of 500
    (well under SQLite's limit on bound parameters)."""
    wanted = sorted(set(values))
    for i in range(0, len(wanted), 500):
        chunk = wanted[i:i + 500]
        yield from conn.execute(f"{query} WHERE {column} IN ({','.join('?' * len(chunk))})", chunk)


def change_lines(conn: sqlite3.Connection, addresses: Iterable[str]) -> list[Line]:
    """The lines of the records that changed these addresses, in ledger order, each once."""
    out: dict[int, Line] = {}
    for pos, off, n, digest in _rows_for(conn, "SELECT DISTINCT l.pos, l.off, l.len, l.digest FROM changes c "
                                         "JOIN lines l ON l.pos = c.pos", "c.address", addresses):
        out[pos] = (off, n, digest)
    return [out[p] for p in sorted(out)]


def moves(conn: sqlite3.Connection) -> tuple[list[str], list[tuple[str, str]]]:
    """(every address the index knows, every (address, previous address) of a move)."""
    addresses = [a for (a,) in conn.execute("SELECT DISTINCT address FROM changes")]
    return addresses, list(conn.execute(
        "SELECT DISTINCT address, prev FROM changes WHERE prev IS NOT NULL AND prev != address"))


def finished_lines(conn: sqlite3.Connection, runs: Iterable[str]) -> dict[str, Line]:
    """Each run's last run.finished line, for the runs that have one."""
    out: dict[str, Line] = {}
    for run, off, n, digest in _rows_for(conn, "SELECT f.run, l.off, l.len, l.digest FROM finished f "
                                         "JOIN lines l ON l.pos = f.pos", "f.run", runs):
        out[run] = (off, n, digest)
    return out


def record_at(view: FileView, line: Line) -> Mapping[str, Any]:
    return read_back(view, [line])[0]
