"""Proof files: an inclusion or consistency proof that a third party checks without the ledger.

A proof file is JSON. It carries the Merkle proof, the tree sizes and roots it connects, and
the signed checkpoint(s) for those roots, so `tfaudit verify-proof FILE --public-key PUB`
needs only the file and the public key:

- inclusion: one ledger line (the record itself) is leaf `seq - 1` of the tree of
  `tree_size` lines whose root a checkpoint signed;
- consistency: the tree of `size1` lines is a prefix of the tree of `size2` lines, both
  roots signed.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from tfaudit.trail import merkle
from tfaudit.trail.checkpoints import Checkpoint, open_checkpoint
from tfaudit.errors import InputError, VerificationError
from tfaudit.trail.signing import Verifier, signer_key_id

FORMAT = "tfaudit.proof/v1"
HASH = "RFC 9162 SHA-256: leaf = SHA-256(0x00 || ledger line without newline), node = SHA-256(0x01 || left || right)"


def _b64(h: bytes) -> str:
    return base64.b64encode(h).decode()


def _unb64(value: Any, what: str) -> bytes:
    if not isinstance(value, str):
        raise InputError(f"proof file: {what} is missing or not a string")
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise InputError(f"proof file: {what} is not base64") from None


def _int(doc: Mapping[str, Any], key: str) -> int:
    v = doc.get(key)
    if isinstance(v, bool) or not isinstance(v, int) or v < 0:
        raise InputError(f"proof file: {key} is missing or not a whole number")
    return v


def inclusion_proof(lines: Sequence[bytes], seq: int, size: int, checkpoint_note: str | None) -> dict[str, Any]:
    if not 1 <= seq <= size <= len(lines):
        raise InputError(f"record seq {seq} is not in a tree of {size} records (the ledger has {len(lines)})",
                         hint="choose --seq between 1 and the tree size")
    tree = merkle.Tree.from_data(lines[:size])
    return {
        "format": FORMAT, "proof": "inclusion", "hash": HASH,
        "seq": seq, "leaf_index": seq - 1, "tree_size": size,
        "record": lines[seq - 1].decode("utf-8"),
        "root": _b64(tree.root()),
        "hashes": [_b64(h) for h in tree.inclusion_proof(seq - 1)],
        "checkpoint": checkpoint_note,
    }


def consistency_proof(lines: Sequence[bytes], size1: int, size2: int,
                      notes: tuple[str | None, str | None]) -> dict[str, Any]:
    if not 1 <= size1 <= size2 <= len(lines):
        raise InputError(f"sizes {size1} and {size2} are not 1 <= FROM <= TO <= {len(lines)} (the ledger's size)")
    tree = merkle.Tree.from_data(lines[:size2])
    return {
        "format": FORMAT, "proof": "consistency", "hash": HASH,
        "size1": size1, "size2": size2,
        "root1": _b64(tree.root(size1)), "root2": _b64(tree.root()),
        "hashes": [_b64(h) for h in tree.consistency_proof(size1)],
        "checkpoints": list(notes),
    }


@dataclass(frozen=True)
class ProofResult:
    summary: str
    authenticated: bool  # the roots are signed by one of the given keys
    details: tuple[str, ...] = ()


def _checkpoint_for(note: Any, size: int, root: bytes, verifiers: Sequence[Verifier], what: str) -> Checkpoint | None:
    if note is None:
        if verifiers:
            raise VerificationError(f"{what}: no signed checkpoint in the proof file, so its root cannot be authenticated",
                                    hint="make the proof with --checkpoints SRC or --signing-key KEY")
        return None
    if not isinstance(note, str):
        raise InputError(f"proof file: {what} checkpoint is not a string")
    if verifiers:
        cp = open_checkpoint(note.encode(), verifiers, what=f"{what} checkpoint")
    else:
        cp = Checkpoint.parse(note[: note.rfind("\n\n") + 1] if "\n\n" in note else note, what=f"{what} checkpoint")
    if cp.size != size or cp.root != root:
        raise VerificationError(f"{what}: the checkpoint signs tree size {cp.size} with another root than the proof's "
                                f"tree of {size}: the proof is not for that checkpoint")
    return cp


def verify_proof(doc: Any, verifiers: Sequence[Verifier]) -> ProofResult:
    """Check a proof file. Raises VerificationError when it does not hold; with verifiers, the
    checkpoint(s) must be signed by one of them (and an included record by one of them too)."""
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise InputError(f"not a tfaudit proof file (expected \"format\": \"{FORMAT}\")",
                         hint="make one with 'tfaudit prove inclusion|consistency'")
    kind = doc.get("proof")
    hashes = doc.get("hashes")
    if not isinstance(hashes, list):
        raise InputError("proof file: hashes is missing or not a list")
    path = [_unb64(h, f"hashes[{i}]") for i, h in enumerate(hashes)]
    if kind == "inclusion":
        return _verify_inclusion(doc, path, verifiers)
    if kind == "consistency":
        return _verify_consistency(doc, path, verifiers)
    raise InputError(f"proof file: unknown proof kind {kind!r}", hint="expected inclusion or consistency")


def _verify_inclusion(doc: Mapping[str, Any], path: list[bytes], verifiers: Sequence[Verifier]) -> ProofResult:
    index, size = _int(doc, "leaf_index"), _int(doc, "tree_size")
    record = doc.get("record")
    if not isinstance(record, str):
        raise InputError("proof file: record is missing or not a string")
    root = _unb64(doc.get("root"), "root")
    line = record.encode("utf-8")
    merkle.verify_inclusion(index, size, merkle.leaf_hash(line), path, root)
    cp = _checkpoint_for(doc.get("checkpoint"), size, root, verifiers, "inclusion")
    details: list[str] = []
    try:
        rec = json.loads(line)
    except ValueError:
        rec = None
    seq = rec.get("chain", {}).get("seq") if isinstance(rec, dict) and isinstance(rec.get("chain"), dict) else None
    if seq != index + 1:
        raise VerificationError(f"the record's chain.seq is {seq}, but the proof places it at leaf {index} (seq {index + 1})")
    if verifiers:
        details.append(_record_signature(rec, verifiers))
    rid = rec.get("id") if isinstance(rec, dict) else None
    summary = (f"record seq {index + 1} (id {rid}, {rec.get('type') if isinstance(rec, dict) else '?'}) is included "
               f"in the ledger tree of {size} records (root {_b64(root)})")
    if cp is not None and verifiers:
        details.insert(0, f"checkpoint signed by {cp.origin}")
    return ProofResult(summary, bool(cp and verifiers), tuple(details))


def _record_signature(rec: Any, verifiers: Sequence[Verifier]) -> str:
    from tfaudit.trail.recordsig import SignatureProblem, verify_record

    if not isinstance(rec, dict) or not isinstance(rec.get("signature"), dict):
        raise VerificationError("the included record has no signature")
    try:
        verifier, _ = verify_record(rec, {v.key_id: v for v in verifiers})
    except SignatureProblem as e:
        if e.unknown_key:
            raise VerificationError(f"the included record is signed by key {signer_key_id(rec['signature'])}, "
                                    "not one of the given keys") from None
        if "does not match" in e.message:
            raise VerificationError("the included record's signature does not match it: the record was edited") from None
        raise VerificationError(f"the included record's {e.message}") from None
    return f"record signature valid ({verifier.key_id})"


def _verify_consistency(doc: Mapping[str, Any], path: list[bytes], verifiers: Sequence[Verifier]) -> ProofResult:
    size1, size2 = _int(doc, "size1"), _int(doc, "size2")
    root1, root2 = _unb64(doc.get("root1"), "root1"), _unb64(doc.get("root2"), "root2")
    merkle.verify_consistency(size1, size2, path, root1, root2)
    notes = doc.get("checkpoints")
    if not isinstance(notes, list) or len(notes) != 2:
        raise InputError("proof file: checkpoints must be a list of two (null where unsigned)")
    cp1 = _checkpoint_for(notes[0], size1, root1, verifiers, f"size {size1}")
    cp2 = _checkpoint_for(notes[1], size2, root2, verifiers, f"size {size2}")
    summary = (f"the ledger tree of {size1} records (root {_b64(root1)}) is a prefix of the tree of {size2} records "
               f"(root {_b64(root2)})")
    details = tuple(f"checkpoint of size {cp.size} signed by {cp.origin}" for cp in (cp1, cp2) if cp and verifiers)
    return ProofResult(summary, bool(cp1 and cp2 and verifiers), details)
