"""Ledger verification: every line, every check, every problem reported with its line.

Checks per line (tfaudit.trail.judge, each line judged alone by the strict reader in
tfaudit.trail.jsonline): strict JSON, the record schema, the canonical form, the signature
(against the given public keys, tfaudit.trail.recordsig); then, in line order, `chain.seq`
continuity and `chain.prev` equal to the digest of the previous line's bytes, unique record
ids, and that each `run.started` has its `run.finished`. Verification never stops at the
first problem and never passes silently: an empty ledger, or one with no verifiable line,
is itself a problem.

A ledger file is judged in worker processes, one per core, each reading its own byte ranges
(tfaudit.trail.workers); their verdicts are folded in line order, so the report is the same
as a single process would give. `--chain-only` workers fold their own ranges and only the
seams between ranges are checked here.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tfaudit.errors import VerificationError
from tfaudit.schema import RecordType
from tfaudit.schema import prepare_line_check
from tfaudit.trail.judge import PREV_PROBLEM, ChainRange, ProblemKind, Verdict, seq_problem
from tfaudit.trail.repair import check_repairs
from tfaudit.trail.signing import Verifier
from tfaudit.trail.store import LedgerStore, open_store
from tfaudit.trail.workers import Progress, chain_ranges, default_jobs, verdict_batches

__all__ = ["Problem", "ProblemKind", "Report", "verify_ledger"]


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
                  chain_only: bool = False, jobs: int | None = None, progress: Progress | None = None) -> Report:
    """Verify a ledger file or any store (a path, a URL, or an opened LedgerStore) against `verifiers`.

    `signatures=False`: every check but the signatures (a report without a key says so).
    `chain_only`: only sequence and hash chain, found without decoding lines.
    `jobs`: worker processes (default: one per core for ledger files over MIN_PARALLEL_BYTES).
    `progress`: advanced by the bytes judged.
    """
    signatures = signatures and not chain_only
    if signatures and not verifiers:
        raise VerificationError("no public key given", hint="pass --public-key PUB (the .pub file from 'tfaudit keygen')")
    by_id = {v.key_id: v for v in verifiers or ()} if signatures else None
    _warm(by_id, chain_only)
    store = source if isinstance(source, LedgerStore) else open_store(source)
    report = Report(store.url if not isinstance(source, (str, Path)) or store.local_path is None else str(source))
    report.local_path = store.local_path
    jobs = default_jobs(store.local_path) if jobs is None else jobs
    view = store.snapshot()
    if progress is not None and report.local_path is not None:
        progress.add_total(getattr(view, "size", 0))
    ranges = chain_ranges(view, jobs, progress) if chain_only else None
    if ranges is not None:
        _join_chain_ranges(report, ranges)
    else:
        fold = _Fold(report)
        for base, verdicts in verdict_batches(view, by_id, chain_only, jobs, progress):
            for verdict in verdicts:
                fold.add(verdict, base)
        fold.finish()
        if not chain_only:
            check_repairs_step(store, fold.repaired, report)
    report.problems.sort(key=lambda p: (p.line is None, p.line or 0))
    report.tally_problems()
    return report


def _warm(by_id: Mapping[str, Verifier] | None, chain_only: bool) -> None:
    """Build the schema validator and the libsodium keys here, once, before workers are forked:
    they inherit them instead of each building its own (and importing while another thread may)."""
    if chain_only:
        return
    prepare_line_check()
    for verifier in (by_id or {}).values():
        verifier.prepare()


class _Fold:
    """The ledger-wide checks, over verdicts in line order."""

    def __init__(self, report: Report) -> None:
        self.report = report
        self.expected_seq = 1
        self.prev_digest: str | None = None
        self.seen_ids: dict[str, int] = {}
        self.open_runs: dict[str, int] = {}
        self.finished_runs: set[str] = set()
        self.repaired: list[tuple[int, dict[str, Any]]] = []

    def add(self, v: Verdict, base: int = 0) -> None:
        """Fold line `base + v.line`."""
        report, n = self.report, base + v.line
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
            report.add(n, ProblemKind.SEQ, seq_problem(v.seq, self.expected_seq))
        if v.prev != self.prev_digest:
            report.add(n, ProblemKind.PREV, PREV_PROBLEM)
        if v.repaired is not None:
            self.repaired.append((n, v.repaired))
        if type(v.seq) is int:
            report.last_seq = v.seq
            self.expected_seq = v.seq + 1
        else:
            self.expected_seq += 1
        self.prev_digest = v.digest
        self._ids_and_runs(v, n)

    def _ids_and_runs(self, v: Verdict, n: int) -> None:
        report = self.report
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


def _join_chain_ranges(report: Report, ranges: Iterable[ChainRange]) -> None:
    """The `--chain-only` report from its ranges' summaries, in order: each range's first record is
    checked here against the range before it (what the fold would have checked at that line)."""
    base, expected, prev = 0, 1, None
    records, record_problems, first_line, last_line = 0, 0, 0, 0
    for r in ranges:
        report.problems += [Problem(base + n, kind, message) for n, kind, message in r.problems]
        if r.first is not None:
            n, seq, seen_prev, before = r.first
            want_prev = prev if n == 1 else before
            if seq != expected + n - 1:
                report.add(base + n, ProblemKind.SEQ, seq_problem(seq, expected + n - 1))
                record_problems += 1
            if seen_prev != want_prev:
                report.add(base + n, ProblemKind.PREV, PREV_PROBLEM)
                record_problems += 1
            first_line = first_line or base + n
            last_line, report.last_seq = base + r.last_record_line, r.last_seq if r.last_seq is not None else 0
        expected = r.next_seq if r.next_seq is not None else expected + r.lines
        prev = r.last_digest if r.lines else prev
        records, record_problems, base = records + r.records, record_problems + r.record_problems, base + r.lines
    report.lines, report.records, report.head = base, records, prev
    if records:
        # as the fold's Report.count makes it (lines have no workspace here); tally_problems finds no line to count
        report.workspaces["(none)"] = {"records": records, "runs": 0, "first_seq": first_line, "last_seq": last_line,
                                       "problems": record_problems}
    if base == 0:
        report.add(None, ProblemKind.EMPTY, "the ledger is empty")


def check_repairs_step(store: LedgerStore, found: Iterable[tuple[int, dict[str, Any]]], report: Report) -> None:
    """A step of its own after the line checks: each `ledger.repaired` record is reported as a repair,
    and its quarantine file must still hold the bytes it names (tfaudit.trail.repair)."""
    for seen in check_repairs(store, found):
        report.repairs.append(seen.describe())
        if seen.problem:
            report.add(seen.line, ProblemKind.REPAIR, seen.problem)
