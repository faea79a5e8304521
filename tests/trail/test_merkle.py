"""The RFC 9162 Merkle tree: published test vectors, and every systematically corrupted proof rejected."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from tfaudit.trail import merkle
from tfaudit.trail.merkle import ProofError, Tree

VECTORS = json.loads((Path(__file__).parents[1] / "data" / "rfc6962_vectors.json").read_text())
LEAVES = [bytes.fromhex(x) for x in VECTORS["leaves"]]
ROOTS = [bytes.fromhex(x) for x in VECTORS["roots"]]
SOME_HASH = bytes.fromhex("abacaba000000000000000000000000000000000000000000060061e00123456")


def h(x: str) -> bytes:
    return bytes.fromhex(x)


# --- published vectors --------------------------------------------------------------------------
def test_hasher_vectors() -> None:
    hv = VECTORS["hasher"]
    assert merkle.EMPTY_ROOT == h(hv["empty_root"])
    assert merkle.leaf_hash(b"") == h(hv["empty_leaf"])
    assert merkle.leaf_hash(b"L123456") == h(hv["leaf_L123456"])
    assert merkle.node_hash(b"N123", b"N456") == h(hv["node_N123_N456"])


def test_roots_of_every_prefix_match_the_vectors() -> None:
    tree = Tree.from_data(LEAVES)
    assert [tree.root(n) for n in range(9)] == ROOTS
    assert merkle.roots_at(tree.leaves, range(9)) == dict(enumerate(ROOTS))


def test_node_hashes_match_the_vectors() -> None:
    tree = Tree.from_data(LEAVES)
    for level, nodes in enumerate(VECTORS["node_hashes"]):
        width = 1 << level
        assert [tree._mth(i * width, (i + 1) * width).hex() for i in range(len(nodes))] == nodes


@pytest.mark.parametrize("case", VECTORS["inclusion"], ids=lambda c: f"leaf{c['index']}-of-{c['size']}")
def test_inclusion_vectors(case: dict) -> None:
    tree = Tree.from_data(LEAVES)
    proof = [h(x) for x in case["proof"]]
    assert tree.inclusion_proof(case["index"], case["size"]) == proof
    merkle.verify_inclusion(case["index"], case["size"], tree.leaves[case["index"]], proof, ROOTS[case["size"]])


@pytest.mark.parametrize("case", VECTORS["consistency"], ids=lambda c: f"{c['size1']}-to-{c['size2']}")
def test_consistency_vectors(case: dict) -> None:
    tree = Tree.from_data(LEAVES)
    proof = [h(x) for x in case["proof"]]
    assert tree.consistency_proof(case["size1"], case["size2"]) == proof
    merkle.verify_consistency(case["size1"], case["size2"], proof, ROOTS[case["size1"]], ROOTS[case["size2"]])


def test_trivial_consistency_cases() -> None:
    # from transparency-dev/merkle TestVerifyConsistency: what is and is not consistent with no proof
    r1, r2 = hashlib.sha256(b"1").digest(), hashlib.sha256(b"2").digest()
    merkle.verify_consistency(0, 0, [], r1, r1)
    merkle.verify_consistency(0, 1, [], r1, r2)
    merkle.verify_consistency(1, 1, [], r2, r2)
    for size1, size2, a, b, proof in [(0, 0, r1, r2, []), (1, 1, r1, r2, []), (1, 0, r1, r2, []), (2, 1, r1, r2, []),
                                      (1, 2, r1, r2, []), (0, 0, merkle.EMPTY_ROOT, merkle.EMPTY_ROOT, [merkle.EMPTY_ROOT]),
                                      (0, 1, r1, r1, [merkle.EMPTY_ROOT]), (1, 1, r1, r1, [merkle.EMPTY_ROOT])]:
        with pytest.raises(ProofError):
            merkle.verify_consistency(size1, size2, proof, a, b)


def test_single_leaf_tree() -> None:
    leaf = merkle.leaf_hash(b"data")
    merkle.verify_inclusion(0, 1, leaf, [], leaf)
    for index, size, lf, root in [(0, 1, leaf, b""), (0, 1, b"", leaf), (0, 0, leaf, leaf), (1, 0, leaf, leaf),
                                  (2, 1, leaf, leaf), (0, 1, SOME_HASH, leaf)]:
        with pytest.raises(ProofError):
            merkle.verify_inclusion(index, size, lf, [], root)


# --- generation agrees with verification for every tree up to 70 leaves -------------------------------
def test_every_proof_of_small_trees_verifies() -> None:
    data = [hashlib.sha256(str(i).encode()).digest()[: i % 7] for i in range(70)]
    tree = Tree.from_data(data)
    roots = merkle.roots_at(tree.leaves, range(71))
    for n in range(1, 71):
        assert roots[n] == tree.root(n)
        for i in range(n):
            merkle.verify_inclusion(i, n, tree.leaves[i], tree.inclusion_proof(i, n), roots[n])
        for m in range(n + 1):
            merkle.verify_consistency(m, n, tree.consistency_proof(m, n), roots[m], roots[n])


# --- systematically corrupted proofs: every one rejected -------------------------------------------------
def _flips(proof: list[bytes]) -> Iterator[tuple[str, list[bytes]]]:
    """Every single-bit flip of every element (256 per hash)."""
    for i, elem in enumerate(proof):
        for bit in range(len(elem) * 8):
            bad = bytearray(elem)
            bad[bit // 8] ^= 1 << (bit % 8)
            yield f"bit {bit} of element {i}", proof[:i] + [bytes(bad)] + proof[i + 1:]


def _edits(proof: list[bytes], extras: list[bytes]) -> Iterator[tuple[str, list[bytes]]]:
    """Every element missing; an element inserted at every position; elements swapped."""
    for i in range(len(proof)):
        yield f"element {i} missing", proof[:i] + proof[i + 1:]
    for i in range(len(proof) + 1):
        for j, extra in enumerate(extras):
            yield f"extra element {j} at {i}", proof[:i] + [extra] + proof[i:]
    for i in range(len(proof) - 1):
        if proof[i] != proof[i + 1]:
            yield f"elements {i} and {i + 1} swapped", proof[:i] + [proof[i + 1], proof[i]] + proof[i + 2:]


def _inclusion_corruptions(index: int, size: int, leaf: bytes, proof: list[bytes],
                           root: bytes) -> Iterator[tuple[str, int, int, bytes, list[bytes], bytes]]:
    for bad_index in {index - 1, index + 1, index ^ 1, index ^ 2, size, -1} - {index}:
        yield f"index {bad_index}", bad_index, size, leaf, proof, root
    # Wrong sizes as in transparency-dev/merkle (another tree height) and sizes that exclude the leaf.
    # A size of the same height and path shape (3 for 4) yields the same root arithmetic: that is why a
    # signed checkpoint binds size and root together (tests/trail/test_checkpoint.py checks that binding).
    for bad_size in {size * 2, size // 2, index, 0} - {size}:
        yield f"size {bad_size}", index, bad_size, leaf, proof, root
    yield "wrong leaf", index, size, merkle.leaf_hash(b"WrongLeaf"), proof, root
    yield "empty root", index, size, leaf, proof, merkle.EMPTY_ROOT
    yield "random root", index, size, leaf, proof, SOME_HASH
    for what, bad in _flips(proof):
        yield what, index, size, leaf, bad, root
    for what, bad in _edits(proof, [b"", root, leaf, SOME_HASH, SOME_HASH[:31]]):
        yield what, index, size, leaf, bad, root


def _consistency_corruptions(size1: int, size2: int, proof: list[bytes], root1: bytes,
                             root2: bytes) -> Iterator[tuple[str, int, int, list[bytes], bytes, bytes]]:
    for bad in {size1 - 1, size1 + 1, size1 ^ 1, size1 ^ 2, size2 + 1} - {size1}:
        yield f"size1 {bad}", bad, size2, proof, root1, root2
    for bad in {size2 * 2, size2 // 2, size1 - 1} - {size2}:  # other heights, and sizes before size1
        yield f"size2 {bad}", size1, bad, proof, root1, root2
    yield "wrong root1", size1, size2, proof, SOME_HASH, root2
    yield "wrong root2", size1, size2, proof, root1, SOME_HASH
    yield "swapped roots", size1, size2, proof, root2, root1
    yield "empty proof", size1, size2, [], root1, root2
    for what, bad in _flips(proof):
        yield what, size1, size2, bad, root1, root2
    for what, bad in _edits(proof, [b"", root1, root2, SOME_HASH, proof[0]]):
        yield what, size1, size2, bad, root1, root2


def _exceptions_for(check) -> str | None:  # type: ignore[no-untyped-def]
    try:
        check()
    except ProofError:
        return None
    return "accepted"


def test_every_corrupted_inclusion_proof_is_rejected() -> None:
    tree = Tree.from_data([b"line %d" % i for i in range(21)])
    cases = 0
    accepted: list[str] = []
    for size in (2, 3, 5, 7, 8, 13, 16, 21):
        root = tree.root(size)
        for index in range(size):
            proof = tree.inclusion_proof(index, size)
            merkle.verify_inclusion(index, size, tree.leaves[index], proof, root)
            for what, i, n, leaf, bad, r in _inclusion_corruptions(index, size, tree.leaves[index], proof, root):
                cases += 1
                if _exceptions_for(lambda: merkle.verify_inclusion(i, n, leaf, bad, r)):
                    accepted.append(f"leaf {index} of {size}: {what}")
    assert not accepted, accepted[:10]
    assert cases > 10_000  # every bit of every element, for every leaf of these trees


def test_every_corrupted_vector_proof_is_rejected() -> None:
    tree = Tree.from_data(LEAVES)
    for case in VECTORS["inclusion"]:
        if not case["proof"]:
            continue
        proof = [h(x) for x in case["proof"]]
        for what, i, n, leaf, bad, r in _inclusion_corruptions(case["index"], case["size"], tree.leaves[case["index"]],
                                                                proof, ROOTS[case["size"]]):
            with pytest.raises(ProofError):
                merkle.verify_inclusion(i, n, leaf, bad, r)
    for case in VECTORS["consistency"]:
        if not case["proof"]:
            continue
        proof = [h(x) for x in case["proof"]]
        for what, s1, s2, bad, r1, r2 in _consistency_corruptions(case["size1"], case["size2"], proof,
                                                                  ROOTS[case["size1"]], ROOTS[case["size2"]]):
            with pytest.raises(ProofError):
                merkle.verify_consistency(s1, s2, bad, r1, r2)


def test_every_corrupted_consistency_proof_is_rejected() -> None:
    tree = Tree.from_data([b"line %d" % i for i in range(21)])
    cases = 0
    accepted: list[str] = []
    for size2 in (3, 5, 8, 13, 16, 21):
        for size1 in range(1, size2):
            proof = tree.consistency_proof(size1, size2)
            r1, r2 = tree.root(size1), tree.root(size2)
            merkle.verify_consistency(size1, size2, proof, r1, r2)
            for what, s1, s2, bad, a, b in _consistency_corruptions(size1, size2, proof, r1, r2):
                cases += 1
                if _exceptions_for(lambda: merkle.verify_consistency(s1, s2, bad, a, b)):
                    accepted.append(f"{size1}->{size2}: {what}")
    assert not accepted, accepted[:10]
    assert cases > 10_000


def test_proofs_of_a_modified_tree_do_not_verify_against_the_original_root() -> None:
    lines = [b"line %d" % i for i in range(10)]
    good = Tree.from_data(lines)
    forged = Tree.from_data(lines[:4] + [b"line 4, edited"] + lines[5:])
    with pytest.raises(ProofError):
        merkle.verify_inclusion(4, 10, forged.leaves[4], forged.inclusion_proof(4), good.root())
    with pytest.raises(ProofError):
        merkle.verify_consistency(5, 10, forged.consistency_proof(5), good.root(5), forged.root())
