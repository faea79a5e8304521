"""Ledger verification: every line, every check, every problem reported with its line.

Checks per line (tfaudit.trail.judge, each line judged alone by the strict reader in
tfaudit.trail.jsonline): strict JSON, the record schema, the canonical form, the signature
(against the given public keys, tfaudit.trail.recordsig); then, in line order, `chain.seq`
continuity and `chain.prev` equal to the digest of the previous line's bytes, unique record
ids, and that each `run.started` has its `run.finished`. Verification never stops at the
first problem and never passes silently: an empty ledger, or one with no verifiable line,
is itself a problem.

Lines are judged in worker processes, one per core, in chunks; their verdicts are folded
in line order, so the report is the same as a single process would give.
"""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tfaudit.errors import VerificationError
from tfaudit.schema import RecordType
from tfaudit.trail.jsonline import MAX_LINE_BYTES, BadLine, parse_line
from tfaudit.trail.judge import ProblemKind, Verdict, judge_chain, judge_line
from tfaudit.trail.repair import check_repairs
from tfaudit.trail.signing import Verifier
from tfaudit.trail.store import LedgerStore, LedgerView, open_store

__all__ = ["Problem", "ProblemKind", "Report", "verify_ledger"]

CHUNK_LINES = 512  # lines per task sent to a worker
MIN_PARALLEL_BYTES = 2 * 2**20  # below this a pool costs more than it saves


@dataclass(frozen=True)
class Problem:
    line: int | None
    kind: ProblemKind
    message: str

    def as_dict(self) -> dict[str, Any]:
        return {"line": self.line, "kind": self.kind.value, "message": self.message}


@dataclass
class Report:
    path: str
    lines: int = 0
    records: int = 0
    runs: int = 0
    last_seq: int = 0
    head: str | None = None  # digest of the last line: pin it elsewhere to detect truncation
    local_path: Path | None = None  # the file of a file store; None for a shared store
    key_ids: set[str] = field(default_factory=set)
    problems: list[Problem] = field(default_factory=list)
    repairs: list[str] = field(default_factory=list)  # `tfaudit ledger repair` moved a torn tail aside
    # per workspace (run.workspace): records, runs, first/last seq, problems on its lines
    workspaces: dict[str, dict[str, Any]] = field(default_factory=dict)
    _line_ws: dict[int, str] = field(default_factory=dict, repr=False)

    def count(self, n: int, workspace: str | None, rtype: str | None) -> None:
        ws = workspace if workspace is not None else "(none)"
        entry = self.workspaces.setdefault(ws, {"records": 0, "runs": 0, "first_seq": n, "last_seq": n, "problems": 0})
        entry["records"] += 1
        entry["last_seq"] = n
        entry["runs"] += rtype == RecordType.RUN_STARTED
        self._line_ws[n] = ws

    def tally_problems(self) -> None:
        for p in self.problems:
            ws = self._line_ws.get(p.line) if p.line is not None else None
            if ws is not None:
                self.workspaces[ws]["problems"] += 1

    @property
    def ok(self) -> bool:
        return not self.problems

    def add(self, line: int | None, kind: ProblemKind, message: str) -> None:
        self.problems.append(Problem(line, kind, message))

    def raise_for_problems(self) -> None:
        if self.problems:
            first = self.problems[0]
            raise VerificationError(
                f"{self.path}: {len(self.problems)} problem(s); first at line {first.line}: {first.message}"
            )

    def as_dict(self) -> dict[str, Any]:
        return {
            "ledger": self.path,
            "ok": self.ok,
            "lines": self.lines,
            "records": self.records,
            "runs": self.runs,
            "last_seq": self.last_seq,
            "head": self.head,
            "key_ids": sorted(self.key_ids),
            "problems": [p.as_dict() for p in self.problems],
            "workspaces": {ws: {**v, "ok": not v["problems"]} for ws, v in sorted(self.workspaces.items())},
            "repairs": list(self.repairs),
        }


def verify_ledger(source: Path | str | LedgerStore, verifiers: Sequence[Verifier] | None, *, signatures: bool = True,
                  chain_only: bool = False, jobs: int | None = None) -> Report:
    """Verify a ledger file or any store (a path, a URL, or an opened LedgerStore) against `verifiers`.

    `signatures=False`: every check but the signatures (a report without a key says so).
    `chain_only`: only sequence and hash chain, found without decoding lines.
    `jobs`: worker processes (default: one per core for ledgers over MIN_PARALLEL_BYTES).
    """
    signatures = signatures and not chain_only
    if signatures and not verifiers:
        raise VerificationError("no public key given", hint="pass --public-key PUB (the .pub file from 'tfaudit keygen')")
    by_id = {v.key_id: v for v in verifiers or ()} if signatures else None
    store = source if isinstance(source, LedgerStore) else open_store(source)
    report = Report(store.url if not isinstance(source, (str, Path)) or store.local_path is None else str(source))
    report.local_path = store.local_path
    if jobs is None:  # the chain alone is cheaper than handing lines to another process
        jobs = 1 if chain_only else _default_jobs(store.local_path)
    fold = _Fold(report)
    view = store.snapshot()
    for verdict in _verdicts(view.lines(), by_id, chain_only, jobs):
        fold.add(verdict)
    fold.finish()
    if not chain_only:
        check_repairs_step(store, view, report)
    report.problems.sort(key=lambda p: (p.line is None, p.line or 0))
    report.tally_problems()
    return report


class _Fold:
    """The ledger-wide checks, over verdicts in line order."""

    def __init__(self, report: Report) -> None:
        self.report = report
        self.expected_seq = 1
        self.prev_digest: str | None = None
        self.seen_ids: dict[str, int] = {}
        self.open_runs: dict[str, int] = {}
        self.finished_runs: set[str] = set()

    def add(self, v: Verdict) -> None:
        report, n = self.report, v.line
        report.lines = n
        for kind, message in v.problems:
            report.add(n, kind, message)
        if not v.record:
            self.prev_digest, self.expected_seq = v.digest, self.expected_seq + 1
            return
        report.records += 1
        report.count(n, v.workspace, v.rtype)
        if v.key_id:
            report.key_ids.add(v.key_id)
        if v.seq != self.expected_seq:
            report.add(n, ProblemKind.SEQ, f"chain.seq is {v.seq}, expected {self.expected_seq} "
                                           "(a record was removed, added or reordered)")
        if v.prev != self.prev_digest:
            report.add(n, ProblemKind.PREV, "chain.prev does not match the previous line "
                                            "(a record before this one was removed, edited or reordered)")
        if type(v.seq) is int:
            report.last_seq = v.seq
            self.expected_seq = v.seq + 1
        else:
            self.expected_seq += 1
        self.prev_digest = v.digest
        self._ids_and_runs(v)

    def _ids_and_runs(self, v: Verdict) -> None:
        report, n = self.report, v.line
        if v.rid is not None:
            if v.rid in self.seen_ids:
                report.add(n, ProblemKind.DUPLICATE, f"record id {v.rid} already appeared at line {self.seen_ids[v.rid]}")
            else:
                self.seen_ids[v.rid] = n
        if v.run_id is None:
            return
        if v.rtype == RecordType.RUN_STARTED:
            report.runs += 1
            self.open_runs[v.run_id] = n
        elif v.rtype == RecordType.RUN_FINISHED:
            if v.run_id in self.open_runs:
                del self.open_runs[v.run_id]
                self.finished_runs.add(v.run_id)
            elif v.run_id in self.finished_runs:
                report.add(n, ProblemKind.DUPLICATE, f"second run.finished for run {v.run_id}")
            else:
                report.add(n, ProblemKind.ORPHAN_FINISH, f"run.finished for run {v.run_id} has no run.started before it")

    def finish(self) -> None:
        report = self.report
        report.head = self.prev_digest
        for run_id, n in self.open_runs.items():
            report.add(n, ProblemKind.UNFINISHED_RUN,
                       f"run {run_id} started here has no run.finished (removed, or tfaudit was killed mid-run)")
        if report.lines == 0:
            report.add(None, ProblemKind.EMPTY, "the ledger is empty")


def check_repairs_step(store: LedgerStore, view: LedgerView, report: Report) -> None:
    """A step of its own after the line checks: each `ledger.repaired` record is reported as a repair,
    and its quarantine file must still hold the bytes it names (tfaudit.trail.repair)."""
    found: list[tuple[int, dict[str, Any]]] = []
    for n, raw in view.lines():
        if b'"type":"ledger.repaired"' not in raw:
            continue
        try:
            found.append((n, parse_line(raw)))
        except BadLine:
            continue  # the line checks reported it
    for seen in check_repairs(store, found):
        report.repairs.append(seen.describe())
        if seen.problem:
            report.add(seen.line, ProblemKind.REPAIR, seen.problem)


# --- judging lines, in this process or in one worker per core ---------------------------------
def _default_jobs(path: Path | None) -> int:
    if path is None:
        return 1  # a shared store: lines arrive over the network, one process keeps up
    try:
        size = path.stat().st_size
    except OSError:
        return 1
    if size < MIN_PARALLEL_BYTES:
        return 1
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        cores = os.cpu_count() or 1
    return max(1, cores)


def _chunks(lines: Iterable[tuple[int, bytes]], size: int) -> Iterator[list[tuple[int, bytes]]]:
    chunk: list[tuple[int, bytes]] = []
    budget = 0
    for item in lines:
        chunk.append(item)
        budget += len(item[1])
        if len(chunk) >= size or budget >= MAX_LINE_BYTES:
            yield chunk
            chunk, budget = [], 0
    if chunk:
        yield chunk


_worker_keys: Mapping[str, Verifier] | None = None
_worker_chain_only = False


def _judge_chunk(chunk: list[tuple[int, bytes]], by_id: Mapping[str, Verifier] | None = None,
                 chain_only: bool | None = None) -> list[Verdict]:
    keys = _worker_keys if chain_only is None else by_id
    only = _worker_chain_only if chain_only is None else chain_only
    if only:
        return [judge_chain(n, raw) for n, raw in chunk]
    return [judge_line(n, raw, keys) for n, raw in chunk]


def _init_worker(by_id: Mapping[str, Verifier] | None, chain_only: bool) -> None:
    global _worker_keys, _worker_chain_only
    _worker_keys, _worker_chain_only = by_id, chain_only


def _verdicts(lines: Iterator[tuple[int, bytes]], by_id: Mapping[str, Verifier] | None, chain_only: bool,
              jobs: int) -> Iterator[Verdict]:
    chunks = _chunks(lines, CHUNK_LINES)
    if jobs <= 1:
        for chunk in chunks:
            yield from _judge_chunk(chunk, by_id, chain_only)
        return
    import multiprocessing

    # fork: the workers inherit the public keys (key objects do not pickle) and the loaded modules
    ctx = multiprocessing.get_context("fork")
    with ctx.Pool(jobs, initializer=_init_worker, initargs=(by_id, chain_only)) as pool:
        yield from _in_order(pool.apply_async, chunks, window=4 * jobs)


def _in_order(submit: Callable[..., Any], chunks: Iterator[list[tuple[int, bytes]]], window: int) -> Iterator[Verdict]:
    """Verdicts of every chunk in order, with at most `window` chunks in flight (memory stays bounded)."""
    pending: deque[Any] = deque()
    for chunk in chunks:
        pending.append(submit(_judge_chunk, (chunk,)))
        if len(pending) >= window:
            yield from pending.popleft().get()
    while pending:
        yield from pending.popleft().get()
