"""`tfaudit log` and `tfaudit history` through the run index (tfaudit.query.runindex), with the same
answers as the whole-ledger scans (tfaudit.query.runs, tfaudit.query.history.history).

The index is used when the command reads one ledger file. For several ledgers, a folder, a
shared store (S3, PostgreSQL; PostgreSQL has its own indexed columns), the S3 sink's objects,
and whenever the index cannot be written or still disagrees with the ledger after a rebuild,
the scan answers instead.
"""

from __future__ import annotations

import contextlib
import gc
import sqlite3
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import TypeVar

from tfaudit.query import runindex
from tfaudit.query.history import Change, address_matcher, changes_in, finished_status, history, pick, run_key
from tfaudit.query.history import with_run_status
from tfaudit.query import Filters, Progress, RunSummary, _NoProgress, actor_names, runs
from tfaudit.schema import RecordType
from tfaudit.trail.ledger import FileView, Ledger
from tfaudit.trail.store import open_store

T = TypeVar("T")
_BATCH = 256  # runs whose records are read back at a time


def _one_ledger(specs: Sequence[str | Path]) -> tuple[str, Ledger] | None:
    """(source name, store) when the command reads exactly one ledger file, as query.sources_for names it."""
    if len(specs) != 1 or "://" in str(specs[0]):
        return None
    path = Path(str(specs[0]))
    if path.is_dir():
        return None
    store = open_store(path)
    if not isinstance(store, Ledger) or not store.exists():
        return None  # the scan reports a missing ledger
    return str(path), store


@contextlib.contextmanager
def _no_gc_pauses() -> Iterator[None]:
    """Reading builds tens of thousands of records, none of them in a reference cycle: the cyclic
    collector would only walk them again and again (about 40% of a warm `log`), and once more when
    it is back on, unless they are frozen out of its reach first (they are still freed when dropped)."""
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.freeze()
            gc.enable()


def _with_index(specs: Sequence[str | Path], progress: Progress,
                answer: Callable[[sqlite3.Connection, FileView, str], T], scan: Callable[[], T]) -> T:
    with _no_gc_pauses():
        return _answer(specs, progress, answer, scan)


def _answer(specs: Sequence[str | Path], progress: Progress,
            answer: Callable[[sqlite3.Connection, FileView, str], T], scan: Callable[[], T]) -> T:
    one = _one_ledger(specs)
    if one is None:
        return scan()
    source, store = one
    where = runindex.index_path(store.path)
    rebuild = rebuilt = False
    for _ in range(4):
        view = store.snapshot()
        if not view.size:
            break
        try:
            with runindex.opened(where, view, progress, rebuild=rebuild) as conn:
                return answer(conn, view, source)
        except runindex.Ahead:
            continue  # another reader indexed lines appended since this snapshot: take a newer one
        except runindex.Untrusted:
            if rebuilt:
                break
            rebuild = rebuilt = True  # rebuild it once, then ask again
        except (runindex.Unavailable, sqlite3.Error):
            break
    return scan()


def log_runs(specs: Sequence[str | Path], filters: Filters | None = None, limit: int | None = None,
             progress: Progress | None = None, env: Mapping[str, str] | None = None) -> list[RunSummary]:
    """query.runs(...)[:limit], through the run index when there is one ledger file."""
    prog = progress or _NoProgress()
    keep = filters or Filters()

    def scan() -> list[RunSummary]:
        found = runs(specs, filters, prog, env)
        return found[:limit] if limit else found

    def answer(conn: sqlite3.Connection, view: FileView, source: str) -> list[RunSummary]:
        out: list[RunSummary] = []
        wanted = [(run, (time, status, workspace, names))
                  for run, time, status, workspace, names in runindex.runs_in_order(conn)
                  if keep.keep_values(time, names, workspace, status)]
        step = min(_BATCH, max(limit or _BATCH, 8))
        for i in range(0, len(wanted), step):
            batch = wanted[i:i + step]
            built = runindex.summaries(conn, view, source, [run for run, _ in batch])
            for run, said in batch:
                s = built.get(run)
                if s is None or (s.time, s.status, s.workspace, actor_names(s)) != said:
                    raise runindex.Untrusted(f"the index's summary of run {run} is not the ledger's")
                out.append(s)  # its time, names, workspace and status are the ones the filter kept
            if limit and len(out) >= limit:
                return out[:limit]
        return out

    return _with_index(specs, prog, answer, scan)


def resource_history(pattern: str, specs: Sequence[str | Path], progress: Progress | None = None,
                     env: Mapping[str, str] | None = None, *, run_status: bool = True) -> list[Change]:
    """history.history(...), through the run index when there is one ledger file. run_status=False
    (the text output, which does not show it) leaves each change's run_status as the scan has it
    before it looks the run up, and reads no run.finished records."""
    prog = progress or _NoProgress()

    def answer(conn: sqlite3.Connection, view: FileView, source: str) -> list[Change]:
        addresses, moved = runindex.moves(conn)
        came_from: dict[str, list[str]] = {}
        for address, prev in moved:
            came_from.setdefault(address, []).append(prev)
        matches = address_matcher(pattern)
        wanted = {a for a in addresses if matches(a)}
        todo = list(wanted)
        while todo:  # every address a move may lead back to: a superset of what pick() keeps
            for prev in came_from.get(todo.pop(), ()):
                if prev not in wanted:
                    wanted.add(prev)
                    todo.append(prev)
        lines = runindex.change_lines(conn, wanted)
        changes: list[Change] = []
        for rec in runindex.read_back(view, lines):
            found = changes_in(source, rec)
            if not [c for c in found if c.address in wanted]:
                raise runindex.Untrusted("a record the index lists changed none of these addresses")
            changes += found
        out = pick(changes, pattern)
        if not run_status:
            return out
        finished = runindex.finished_lines(conn, {c.run_id for c in out if not c.out_of_band})
        status: dict[str, str] = {}
        for key, rec in zip(finished, runindex.read_back(view, list(finished.values()))):
            if rec.get("type") != RecordType.RUN_FINISHED or run_key(rec) != key:
                raise runindex.Untrusted(f"the index's run.finished of run {key} is not one")
            status[key] = finished_status(rec)
        return with_run_status(out, status)

    return _with_index(specs, prog, answer, lambda: history(pattern, specs, prog, env))
