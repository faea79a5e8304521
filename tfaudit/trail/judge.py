"""Judging one ledger line alone: what verify knows about it before looking at its neighbours.

`judge_line` never raises for anything a line can hold: strict JSON (tfaudit.trail.jsonline),
the record schema, the canonical form, the signature (tfaudit.trail.recordsig). It returns a
`Verdict`: the line's digest, its problems, and the few facts the ledger-wide checks need
(sequence, previous digest, record id, type, run id). Verdicts are small and picklable, so
lines can be judged in worker processes and folded in order by tfaudit.trail.verify.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Mapping
from enum import Enum
from typing import Any, NamedTuple

from tfaudit.schema import RecordType, line_schema_errors
from tfaudit.trail.jsonline import MAX_LINE_BYTES, BadLine, LineFault, is_canonical, parse_line
from tfaudit.trail.recordsig import SignatureProblem, verify_record
from tfaudit.trail.signing import Verifier


class ProblemKind(str, Enum):
    NOT_JSON = "not_json"
    TORN = "torn_line"
    TOO_LONG = "too_long"
    NOT_UTF8 = "not_utf8"
    BAD_NUMBER = "bad_number"
    LONE_SURROGATE = "lone_surrogate"
    TOO_DEEP = "too_deep"
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


_FAULT_KIND: dict[LineFault, ProblemKind] = {
    LineFault.TOO_LONG: ProblemKind.TOO_LONG, LineFault.TORN: ProblemKind.TORN,
    LineFault.NOT_UTF8: ProblemKind.NOT_UTF8, LineFault.NOT_JSON: ProblemKind.NOT_JSON,
    LineFault.NUMBER: ProblemKind.BAD_NUMBER, LineFault.SURROGATE: ProblemKind.LONE_SURROGATE,
    LineFault.TOO_DEEP: ProblemKind.TOO_DEEP, LineFault.NOT_OBJECT: ProblemKind.NOT_JSON,
}


class Verdict(NamedTuple):
    line: int
    digest: str | None  # None when the line was too long to keep
    problems: tuple[tuple[ProblemKind, str], ...]
    record: bool = False  # a JSON object (counted as a record)
    seq: Any = None
    prev: Any = None
    rid: str | None = None
    rtype: str | None = None
    run_id: str | None = None
    key_id: str | None = None  # the given key that verified its signature
    workspace: str | None = None  # run.workspace, for the per-workspace summary
    repaired: dict[str, Any] | None = None  # a ledger.repaired record: its quarantine file is checked last


class ChainRange(NamedTuple):
    """What `judge_chain_range` found in a run of lines judged alone (line numbers from 1 within it).

    The checks of its first record against the lines before the range are left to whoever joins
    the ranges (tfaudit.trail.verify): `first` is (its line, seq, prev, digest of the line before it
    within the range, or None at the range's first line)."""

    lines: int
    problems: list[tuple[int, ProblemKind, str]]
    first: tuple[int, int, str | None, str | None] | None
    records: int
    record_problems: int  # problems on record lines (the per-workspace count)
    last_record_line: int
    last_seq: int | None
    next_seq: int | None  # the seq the line after the range must have (None: no record in it)
    last_digest: str | None


def seq_problem(seq: Any, expected: int) -> str:
    return f"chain.seq is {seq}, expected {expected} (a record was removed, added or reordered)"


PREV_PROBLEM = "chain.prev does not match the previous line (a record before this one was removed, edited or reordered)"


def _digest(line: bytes) -> str:
    return "sha256:" + hashlib.sha256(line).hexdigest()


def judge_line(n: int, raw: bytes, by_id: Mapping[str, Verifier] | None) -> Verdict:
    """Everything line `n` says by itself. `by_id` None: do not check signatures (chain and schema only)."""
    torn = not raw.endswith(b"\n")
    line = raw[:-1] if not torn else raw
    if len(line) > MAX_LINE_BYTES:
        return Verdict(n, None, ((ProblemKind.TOO_LONG, f"line is longer than {MAX_LINE_BYTES // 2**20} MiB: "
                                  "not read (the next line's chain.prev cannot be checked)"),))
    digest = _digest(line)
    try:
        rec = parse_line(line)
    except BadLine as e:
        if torn and e.fault is LineFault.NOT_JSON:
            return Verdict(n, digest, ((ProblemKind.TORN, "incomplete final line (torn write or truncation)"),))
        return Verdict(n, digest, ((_FAULT_KIND[e.fault], e.message),))
    problems: list[tuple[ProblemKind, str]] = []
    if torn:
        problems.append((ProblemKind.TORN, "final line has no newline (torn write or truncation)"))
    try:
        errors = line_schema_errors(rec)
        if errors:  # rare: no list built for a valid record
            problems += [(ProblemKind.SCHEMA, f"schema: {err}") for err in errors[:3]]
    except RecursionError:  # unreachable under jsonline's depth limit; no line may crash verify
        problems.append((ProblemKind.TOO_DEEP, "record nests too deep for the schema check"))
    key_id, proven = _signature(rec, line, by_id, problems)
    if not proven and not is_canonical(rec, line):  # the float literals: read again, strictly
        problems.append((ProblemKind.NOT_CANONICAL, "line is not in canonical (RFC 8785) form: it was rewritten"))
    chain = rec.get("chain")
    seq, prev = (chain.get("seq"), chain.get("prev")) if isinstance(chain, dict) else (None, None)
    run = rec.get("run")
    run = run if isinstance(run, dict) else {}
    run_id, ws = run.get("id"), run.get("workspace")
    rid, rtype = rec.get("id"), rec.get("type")
    repaired = rec if rtype == RecordType.LEDGER_REPAIRED and _REPAIRED in line else None
    return Verdict(n, digest, tuple(problems), True, seq, prev, rid if isinstance(rid, str) else None,
                   rtype if isinstance(rtype, str) else None, run_id if isinstance(run_id, str) else None, key_id,
                   str(ws) if ws is not None else None, repaired)


_REPAIRED = b'"type":"ledger.repaired"'  # as written (a line that spells it otherwise is not canonical)


def _signature(rec: dict[str, Any], line: bytes, by_id: Mapping[str, Verifier] | None,
               problems: list[tuple[ProblemKind, str]]) -> tuple[str | None, bool]:
    """(key id that verified it, whether the signature covered the line's own bytes)."""
    if by_id is None:
        return None, False
    try:
        verifier, proven = verify_record(rec, by_id, line)
    except SignatureProblem as e:
        problems.append((ProblemKind.UNKNOWN_KEY if e.unknown_key else ProblemKind.BAD_SIGNATURE, e.message))
        return None, False
    return verifier.key_id, proven


# The chain member as RFC 8785 writes it: right after `actor`, keys sorted.
_CHAIN = re.compile(rb'"chain":\{"prev":(null|"sha256:[0-9a-f]{64}"),"seq":([1-9][0-9]{0,15})\}')


def judge_chain(n: int, raw: bytes) -> Verdict:
    """Only the chain: the line's digest and its chain member, found without decoding the line.

    For `verify --chain-only`: a fast check that lines were not removed, added or reordered
    (against a pinned head or checkpoint); it proves nothing about who wrote them.
    """
    torn = not raw.endswith(b"\n")
    line = raw[:-1] if not torn else raw
    if len(line) > MAX_LINE_BYTES:
        return Verdict(n, None, ((ProblemKind.TOO_LONG, f"line is longer than {MAX_LINE_BYTES // 2**20} MiB"),))
    digest = _digest(line)
    m = _CHAIN.search(line)
    if m is None:
        kind = ProblemKind.TORN if torn else ProblemKind.NOT_JSON
        return Verdict(n, digest, ((kind, "no chain member in the written form (run a full verify)"),))
    problems = ((ProblemKind.TORN, "final line has no newline (torn write or truncation)"),) if torn else ()
    prev = None if m.group(1) == b"null" else m.group(1)[1:-1].decode("ascii")
    return Verdict(n, digest, problems, True, int(m.group(2)), prev)


def judge_chain_range(raws: Iterable[bytes]) -> ChainRange:
    """`judge_chain` over consecutive lines, with the sequence and prev checks among them done here
    (the same checks, in the same order, as tfaudit.trail.verify's fold): a worker returns one
    small summary per range instead of a verdict per line."""
    problems: list[tuple[int, ProblemKind, str]] = []
    first: tuple[int, int, str | None, str | None] | None = None
    n = records = record_problems = last_line = 0
    expected = 0  # meaningful from the first record on
    last_seq: int | None = None
    digest: str | None = None
    line_digest: str | None
    for raw in raws:
        n += 1
        m = _CHAIN.search(raw) if raw[-1:] == b"\n" and len(raw) <= MAX_LINE_BYTES + 1 else None
        if m is not None:  # a whole line with its chain member: judge_chain's verdict, without building it
            seq, prev = int(m.group(2)), None if m.group(1) == b"null" else m.group(1)[1:-1].decode("ascii")
            line_digest, is_record = "sha256:" + hashlib.sha256(memoryview(raw)[:-1]).hexdigest(), True
        else:
            v = judge_chain(n, raw)
            problems += [(n, kind, message) for kind, message in v.problems]
            seq, prev, line_digest, is_record = v.seq, v.prev, v.digest, v.record
            record_problems += len(v.problems) if is_record else 0
        if is_record:
            records += 1
            last_line = n
            if first is None:
                first = (n, seq, prev, digest if n > 1 else None)
            else:
                if seq != expected:
                    problems.append((n, ProblemKind.SEQ, seq_problem(seq, expected)))
                    record_problems += 1
                if prev != digest:
                    problems.append((n, ProblemKind.PREV, PREV_PROBLEM))
                    record_problems += 1
            last_seq, expected = seq, seq + 1
        elif first is not None:
            expected += 1
        digest = line_digest
    return ChainRange(n, problems, first, records, record_problems, last_line, last_seq,
                      expected if first is not None else None, digest)
