"""Verification status of each ledger a report reads, stated exactly as far as it was checked."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tfaudit.trail.signing import Verifier
from tfaudit.trail.verify import verify_ledger


@dataclass(frozen=True)
class LedgerStatus:
    source: str
    state: str  # "verified" | "failed" | "chain only" | "not checked"
    summary: str
    problems: tuple[str, ...] = ()


def ledger_status(source: str, verifiers: Sequence[Verifier], progress: Any = None) -> LedgerStatus:
    if source.startswith("s3://") or not Path(source).is_file():
        return LedgerStatus(source, "not checked", "not a local ledger file; run 'tfaudit verify' where it is")
    # without a key: all but signatures; the bar keeps moving through verification, to the end
    report = verify_ledger(Path(source), verifiers, signatures=bool(verifiers), progress=progress)
    problems = report.problems
    lines = tuple(f"line {p.line}: {p.kind.value}: {p.message}" if p.line else f"{p.kind.value}: {p.message}"
                  for p in problems)
    base = f"{report.records} records, seq 1..{report.last_seq}"
    if problems:
        return LedgerStatus(source, "failed", f"{len(problems)} problem(s); {base}", lines)
    if not verifiers:
        return LedgerStatus(source, "chain only", f"{base}: JSON, schema, sequence and hash chain intact; "
                                                  "signatures NOT checked (pass --public-key)")
    return LedgerStatus(source, "verified", f"{base}: signatures ({', '.join(sorted(report.key_ids))}), "
                                            f"sequence and hash chain verified; head {report.head}")


def statuses(sources: Sequence[str], verifiers: Sequence[Verifier], progress: Any = None) -> list[LedgerStatus]:
    return [ledger_status(s, verifiers, progress) for s in sources]
