"""Ledger verification: every line, every check, every problem reported with its line.

Checks per line: valid JSON, the record schema, the signature (against the given public
keys), `chain.seq` continuity and `chain.prev` equal to the digest of the previous line's
bytes, and, over the whole ledger, that each `run.started` has its `run.finished`.
Verification never stops at the first problem and never passes silently: an empty
ledger, or one with no verifiable line, is itself a problem.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Any

from tfaudit.errors import VerificationError
from tfaudit.schema import schema_errors
from tfaudit.trail.signing import Verifier, canonical, line_digest, signing_payload
from tfaudit.trail.repair import check_repairs
from tfaudit.trail.store import LedgerStore, LedgerView, open_store


class ProblemKind(str, Enum):
    NOT_JSON = "not_json"
    TORN = "torn_line"
    SCHEMA = "schema"
    NOT_CANONICAL = "not_canonical"
    UNKNOWN_KEY = "unknown_key"
    BAD_SIGNATURE = "bad_signature"
    SEQ = "sequence"
    PREV = "prev_digest"
    DUPLICATE = "duplicate"
    UNFINISHED_RUN = "unfinished_run"
    ORPHAN_FINISH = "orphan_finish"
    EMPTY = "empty"
    REPAIR = "repair"  # a ledger.repaired record whose quarantine file is missing or changed


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

    def count(self, n: int, rec: dict[str, Any]) -> None:
        run = rec.get("run")
        ws = str(run.get("workspace")) if isinstance(run, dict) and run.get("workspace") is not None else "(none)"
        entry = self.workspaces.setdefault(ws, {"records": 0, "runs": 0, "first_seq": n, "last_seq": n, "problems": 0})
        entry["records"] += 1
        entry["last_seq"] = n
        entry["runs"] += rec.get("type") == "run.started"
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


def verify_ledger(source: Path | str | LedgerStore, verifiers: Sequence[Verifier]) -> Report:
    """Verify a ledger file or any store (a path, a URL, or an opened LedgerStore)."""
    if not verifiers:
        raise VerificationError("no public key given", hint="pass --public-key PUB (the .pub file from 'tfaudit keygen')")
    by_id = {v.key_id: v for v in verifiers}
    store = source if isinstance(source, LedgerStore) else open_store(source)
    report = Report(store.url if not isinstance(source, (str, Path)) or store.local_path is None else str(source))
    report.local_path = store.local_path
    expected_seq = 1
    prev_digest: str | None = None
    seen_ids: dict[str, int] = {}
    open_runs: dict[str, int] = {}
    finished_runs: set[str] = set()

    view = store.snapshot()
    for n, raw in view.lines():
        report.lines = n
        line = raw[:-1] if raw.endswith(b"\n") else raw
        torn = not raw.endswith(b"\n")
        digest = line_digest(line)
        try:
            rec = json.loads(line)
        except ValueError as e:
            kind = ProblemKind.TORN if torn else ProblemKind.NOT_JSON
            detail = f"{e.msg} at column {e.colno}" if isinstance(e, json.JSONDecodeError) else "bad encoding"
            what = "incomplete final line (torn write or truncation)" if torn else f"not valid JSON ({detail})"
            report.add(n, kind, what)
            prev_digest = digest
            expected_seq += 1
            continue
        if torn:
            report.add(n, ProblemKind.TORN, "final line has no newline (torn write or truncation)")
        if not isinstance(rec, dict):
            report.add(n, ProblemKind.NOT_JSON, "line is JSON but not a record object")
            prev_digest = digest
            expected_seq += 1
            continue
        report.records += 1
        report.count(n, rec)

        for err in schema_errors(rec)[:3]:
            report.add(n, ProblemKind.SCHEMA, f"schema: {err}")
        try:
            if canonical(rec) != line:
                report.add(n, ProblemKind.NOT_CANONICAL, "line is not in canonical (RFC 8785) form: it was rewritten")
        except Exception:  # noqa: BLE001 - rfc8785 rejects e.g. floats out of range
            report.add(n, ProblemKind.NOT_CANONICAL, "line cannot be canonicalized")

        _check_signature(n, rec, by_id, report)

        raw_chain = rec.get("chain")
        chain: dict[str, Any] = raw_chain if isinstance(raw_chain, dict) else {}
        seq, prev = chain.get("seq"), chain.get("prev")
        if seq != expected_seq:
            report.add(n, ProblemKind.SEQ, f"chain.seq is {seq}, expected {expected_seq} (a record was removed, added or reordered)")
        if prev != prev_digest:
            report.add(n, ProblemKind.PREV, "chain.prev does not match the previous line (a record before this one was removed, edited or reordered)")
        if isinstance(seq, int):
            report.last_seq = seq
            expected_seq = seq + 1
        else:
            expected_seq += 1
        prev_digest = digest

        rid = rec.get("id")
        if isinstance(rid, str):
            if rid in seen_ids:
                report.add(n, ProblemKind.DUPLICATE, f"record id {rid} already appeared at line {seen_ids[rid]}")
            else:
                seen_ids[rid] = n

        run = rec.get("run")
        run_id = run.get("id") if isinstance(run, dict) else None
        rtype = rec.get("type")
        if rtype == "run.started" and isinstance(run_id, str):
            report.runs += 1
            open_runs[run_id] = n
        elif rtype == "run.finished" and isinstance(run_id, str):
            if run_id in open_runs:
                del open_runs[run_id]
                finished_runs.add(run_id)
            elif run_id in finished_runs:
                report.add(n, ProblemKind.DUPLICATE, f"second run.finished for run {run_id}")
            else:
                report.add(n, ProblemKind.ORPHAN_FINISH, f"run.finished for run {run_id} has no run.started before it")

    report.head = prev_digest
    for run_id, n in open_runs.items():
        report.add(n, ProblemKind.UNFINISHED_RUN,
                   f"run {run_id} started here has no run.finished (removed, or tfaudit was killed mid-run)")
    if report.lines == 0:
        report.add(None, ProblemKind.EMPTY, "the ledger is empty")
    check_repairs_step(store, view, report)
    report.problems.sort(key=lambda p: (p.line is None, p.line or 0))
    report.tally_problems()
    return report


def check_repairs_step(store: LedgerStore, view: LedgerView, report: Report) -> None:
    """A step of its own after the line checks: each `ledger.repaired` record is reported as a repair,
    and its quarantine file must still hold the bytes it names (tfaudit.trail.repair)."""
    found: list[tuple[int, dict[str, Any]]] = []
    for n, raw in view.lines():
        if b'"type":"ledger.repaired"' not in raw:
            continue
        try:
            rec = json.loads(raw)
        except ValueError:
            continue  # the line checks reported it
        if isinstance(rec, dict):
            found.append((n, rec))
    for seen in check_repairs(store, found):
        report.repairs.append(seen.describe())
        if seen.problem:
            report.add(seen.line, ProblemKind.REPAIR, seen.problem)


def _check_signature(n: int, rec: dict[str, Any], by_id: dict[str, Verifier], report: Report) -> None:
    sig = rec.get("signature")
    if not isinstance(sig, dict):
        report.add(n, ProblemKind.BAD_SIGNATURE, "record has no signature")
        return
    key_id = sig.get("key_id")
    verifier = by_id.get(key_id) if isinstance(key_id, str) else None
    if verifier is None:
        report.add(n, ProblemKind.UNKNOWN_KEY, f"signed by key {key_id}, which is not among the given public keys")
        return
    report.key_ids.add(verifier.key_id)
    try:
        value = base64.b64decode(str(sig.get("value", "")), validate=True)
    except (binascii.Error, ValueError):
        report.add(n, ProblemKind.BAD_SIGNATURE, "signature value is not base64")
        return
    try:
        verifier.verify(value, signing_payload(rec))
    except VerificationError:
        report.add(n, ProblemKind.BAD_SIGNATURE, "signature does not match the record (the record was edited)")
