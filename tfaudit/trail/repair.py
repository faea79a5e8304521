"""Torn tails: `tfaudit ledger repair` moves them aside, and verify checks what was moved.

A power loss while a batch is written can leave bytes after the last newline. Appends refuse a
ledger in that state. `repair_ledger` moves those bytes into a quarantine file beside the
ledger (`<ledger>.torn-<start>-<end>`) and appends a signed `ledger.repaired` record naming
the byte range, the length and the sha256 of what was moved, so the gap is part of the trail
and not an edit. `check_repairs` (a step of `tfaudit verify`) finds each such record and checks
the quarantine file is still there with those bytes.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tfaudit.errors import LedgerNotFound, UsageError
from tfaudit.schema import RecordType
from tfaudit.trail.signing import Signer
from tfaudit.trail.store import LedgerStore, Tail

REPAIRED = RecordType.LEDGER_REPAIRED


@dataclass(frozen=True)
class TornTail:
    """Bytes after the last newline of a file ledger: [start, end) and their digest."""

    start: int
    end: int
    sha256: str
    quarantine: Path

    def detail(self, after_seq: int) -> dict[str, Any]:
        return {"offset": self.start, "length": self.end - self.start, "sha256": self.sha256,
                "quarantine": self.quarantine.name, "after_seq": after_seq}


def digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def quarantine_path(ledger: Path, start: int, end: int) -> Path:
    return ledger.with_name(f"{ledger.name}.torn-{start}-{end}")


@dataclass(frozen=True)
class RepairProblem:
    line: int
    message: str


@dataclass(frozen=True)
class RepairSeen:
    """One `ledger.repaired` record and what checking its quarantine file found."""

    line: int
    offset: int
    length: int
    quarantine: str
    problem: str | None

    def describe(self) -> str:
        what = f"line {self.line}: repaired: {self.length} torn byte(s) at offset {self.offset} moved to {self.quarantine}"
        return what + (f": {self.problem}" if self.problem else " (digest checks)")


def check_repairs(ledger: LedgerStore, records: Iterable[tuple[int, Mapping[str, Any]]]) -> list[RepairSeen]:
    """Each `ledger.repaired` record among (line, record) pairs, its quarantine file checked: it must
    exist beside the ledger and hold exactly `length` bytes with `sha256`."""
    base = ledger.local_path
    out: list[RepairSeen] = []
    for n, rec in records:
        if rec.get("type") != REPAIRED:
            continue
        d = rec.get("detail")
        d = d if isinstance(d, Mapping) else {}
        name, length, want = str(d.get("quarantine", "")), d.get("length"), d.get("sha256")
        given_offset = d.get("offset")
        offset = given_offset if isinstance(given_offset, int) else -1
        problem: str | None = None
        if not isinstance(length, int) or not isinstance(want, str) or not name or "/" in name or name.startswith("."):
            problem = "the record does not name a quarantine file, a length and a sha256"
        elif base is None:
            problem = None  # shared stores never tear; nothing local to check
        else:
            problem = _check_file(base.with_name(name), length, want)
        out.append(RepairSeen(n, offset, length if isinstance(length, int) else -1, name, problem))
    return out


def _check_file(path: Path, length: int, want: str) -> str | None:
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return f"the quarantine file {path} is missing"
    except OSError as e:
        return f"the quarantine file {path} cannot be read: {e.strerror}"
    if len(data) != length or digest(data) != want:
        return f"the quarantine file {path} does not hold the bytes the record names ({len(data)} bytes, {digest(data)})"
    return None


def file_ledger(store: LedgerStore) -> Path:
    """Repair applies to file ledgers: shared stores commit whole batches and never tear."""
    if store.local_path is None:
        raise UsageError(f"{store.url} is a shared store: its batches land whole, there is no torn tail to repair")
    return store.local_path



@dataclass(frozen=True)
class Repaired:
    torn: TornTail
    seq: int  # the position of the ledger.repaired record


def repair_ledger(store: LedgerStore, signer: Signer, actor: Mapping[str, Any], cwd: Path) -> Repaired | None:
    """Move a file ledger's torn tail aside with a signed `ledger.repaired` record; None when the
    ledger ends cleanly (nothing is written then)."""
    from tfaudit import records

    path = file_ledger(store)
    cut = getattr(store, "cut_torn_tail", None)
    if cut is None:
        raise UsageError(f"{store.url} cannot be repaired by this version of tfaudit")
    if not store.exists():
        raise LedgerNotFound(f"ledger {path} does not exist", hint="check the path (or --ledger)")

    def make(torn: TornTail, tail: Tail) -> dict[str, Any]:
        run = records.RunInfo(id=records.RunId(records.new_id()), command="ledger repair", args=(), tool="unknown",
                              tool_version=None, workspace="", working_dir=str(cwd))
        return records.base_record(REPAIRED, run, actor, detail=torn.detail(tail.seq))

    done = cut(make, signer)
    if done is None:
        return None
    torn, appended = done
    return Repaired(torn, appended.seq)
