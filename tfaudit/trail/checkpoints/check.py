"""Verifying a ledger against its signed checkpoints: truncation, rewritten history, forks."""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Any

from tfaudit.errors import InputError, VerificationError
from tfaudit.trail import merkle
from tfaudit.trail.checkpoints.destinations import CheckpointStore
from tfaudit.trail.checkpoints.note import CHECKPOINT_SUFFIX, PROOF_SUFFIX, Checkpoint, open_checkpoint
from tfaudit.trail.signing import Verifier
from tfaudit.trail.store import LedgerView, read_lines


class CheckpointProblemKind(str, Enum):
    NONE_FOUND = "no_checkpoints"
    BAD_CHECKPOINT = "bad_checkpoint"
    TRUNCATED = "truncated"
    REWRITTEN = "rewritten"
    FORK = "fork"
    UNPROVEN = "unproven"


@dataclass(frozen=True)
class CheckpointProblem:
    kind: CheckpointProblemKind
    where: str
    message: str

    def as_dict(self) -> dict[str, str]:
        return {"kind": self.kind.value, "where": self.where, "message": self.message}


@dataclass
class CheckpointReport:
    source: str
    ledger_size: int = 0
    checkpoints: int = 0
    latest: Checkpoint | None = None
    problems: list[CheckpointProblem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def add(self, kind: CheckpointProblemKind, where: str, message: str) -> None:
        self.problems.append(CheckpointProblem(kind, where, message))

    def as_dict(self) -> dict[str, Any]:
        return {"source": self.source, "ok": self.ok, "ledger_size": self.ledger_size,
                "checkpoints": self.checkpoints,
                "latest": None if self.latest is None else {"origin": self.latest.origin, "size": self.latest.size,
                                                            "root": self.latest.root_b64},
                "problems": [p.as_dict() for p in self.problems]}


def _stored_proof(store: CheckpointStore, name: str, names: set[str]) -> dict[str, Any] | None:
    proof_name = name.replace(CHECKPOINT_SUFFIX, PROOF_SUFFIX)
    if proof_name not in names:
        return None
    try:
        doc = json.loads(store.get(proof_name))
        return doc if isinstance(doc, dict) else None
    except (ValueError, InputError):
        return None


def _b64_hashes(values: Any) -> list[bytes]:
    if not isinstance(values, list):
        raise VerificationError("proof hashes are not a list")
    try:
        return [base64.b64decode(v, validate=True) for v in values]
    except (binascii.Error, ValueError, TypeError):
        raise VerificationError("a proof hash is not base64") from None


def check_ledger(ledger: str | Path | LedgerView, store: CheckpointStore,
                 verifiers: Sequence[Verifier]) -> CheckpointReport:
    """Check the ledger (a path, URL or snapshot) against every checkpoint in store signed by one of verifiers."""
    report = CheckpointReport(store.describe())
    lines = read_lines(ledger)
    report.ledger_size = len(lines)
    names = store.names()
    name_set = set(names)
    found: list[tuple[str, Checkpoint]] = []
    for name in names:
        if not name.endswith(CHECKPOINT_SUFFIX):
            continue
        try:
            found.append((name, open_checkpoint(store.get(name), verifiers, what=name)))
        except VerificationError as e:
            report.add(CheckpointProblemKind.BAD_CHECKPOINT, name, str(e))
    report.checkpoints = len(found)
    if not found:
        report.add(CheckpointProblemKind.NONE_FOUND, report.source,
                   "no checkpoint signed by the given key(s) found: nothing anchors this ledger")
        return report
    found.sort(key=lambda nc: (nc[1].size, nc[0]))
    leaves = [merkle.leaf_hash(line) for line in lines]
    roots = merkle.roots_at(leaves, {cp.size for _, cp in found if cp.size <= len(leaves)})
    tree: merkle.Tree | None = None

    # successive checkpoints must extend one another
    for (name_a, a), (name_b, b) in zip(found, found[1:]):
        pair = f"{name_a} -> {name_b}"
        if a.size == b.size:
            if a.root != b.root:
                report.add(CheckpointProblemKind.FORK, pair,
                           f"two different roots signed for tree size {a.size}: the log forked")
            continue
        doc = _stored_proof(store, name_b, name_set)
        hashes: list[bytes] | None = None
        if doc is not None and doc.get("from_size") == a.size and doc.get("from_root") == a.root_b64:
            try:
                hashes = _b64_hashes(doc.get("hashes"))
            except VerificationError:
                hashes = None
        if hashes is None and b.size <= len(leaves):
            tree = tree or merkle.Tree(leaves)
            hashes = tree.consistency_proof(a.size, b.size)
        if hashes is None:
            report.add(CheckpointProblemKind.UNPROVEN, pair,
                       f"no consistency proof from size {a.size} to {b.size} is stored, and the ledger is too short to make one")
            continue
        try:
            merkle.verify_consistency(a.size, b.size, hashes, a.root, b.root)
        except VerificationError:
            report.add(CheckpointProblemKind.FORK, pair,
                       f"checkpoint of size {b.size} does not extend the one of size {a.size}: "
                       "the log was rewritten between them (a fork)")

    # the ledger must still hold every signed tree
    mismatched = [(n, cp) for n, cp in found if cp.size <= len(leaves) and roots[cp.size] != cp.root]
    if mismatched:
        name, cp = mismatched[0]
        report.add(CheckpointProblemKind.REWRITTEN, name,
                   f"the ledger's first {cp.size} records do not hash to the root signed in this checkpoint: "
                   f"records were rewritten after it was signed ({len(mismatched)} of {len(found)} checkpoints differ)")
    latest_name, latest = found[-1]
    report.latest = latest
    if latest.size > len(leaves):
        report.add(CheckpointProblemKind.TRUNCATED, latest_name,
                   f"the ledger has {len(leaves)} records but this checkpoint signed {latest.size}: "
                   f"{latest.size - len(leaves)} record(s) were removed since (the newest, or others with the rest "
                   "rewritten)" if not mismatched else
                   f"the ledger has {len(leaves)} records but this checkpoint signed {latest.size}")
    return report