"""The RFC 9162 (Certificate Transparency v2) Merkle tree over ledger lines, and its proofs.

Leaf i is ledger line i+1 (`chain.seq` = i+1) without its newline. Hashes follow RFC 9162
section 2.1: leaf = SHA-256(0x00 || line), node = SHA-256(0x01 || left || right), and the
empty tree hashes to SHA-256(""). Proof generation is section 2.1.3.1/2.1.4.1; verification is
2.1.3.2/2.1.4.2, and raises instead of returning a bool.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence

from tfaudit.errors import VerificationError

HASH_SIZE = 32
EMPTY_ROOT = hashlib.sha256(b"").digest()


class ProofError(VerificationError):
    """A Merkle proof does not verify."""


def leaf_hash(data: bytes) -> bytes:
    return hashlib.sha256(b"\x00" + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


def _split(n: int) -> int:
    """The largest power of two smaller than n (n > 1)."""
    return 1 << ((n - 1).bit_length() - 1)


class Tree:
    """A tree over leaf hashes; any prefix D[0:size] can be asked for its root and proofs."""

    def __init__(self, leaves: Sequence[bytes]) -> None:
        self.leaves = list(leaves)

    @classmethod
    def from_data(cls, items: Iterable[bytes]) -> Tree:
        return cls([leaf_hash(d) for d in items])

    @property
    def size(self) -> int:
        return len(self.leaves)

    def _mth(self, lo: int, hi: int) -> bytes:
        n = hi - lo
        if n == 0:
            return EMPTY_ROOT
        if n == 1:
            return self.leaves[lo]
        k = _split(n)
        return node_hash(self._mth(lo, lo + k), self._mth(lo + k, hi))

    def _size(self, size: int | None) -> int:
        size = self.size if size is None else size
        if not 0 <= size <= self.size:
            raise ValueError(f"tree size {size} is outside 0..{self.size}")
        return size

    def root(self, size: int | None = None) -> bytes:
        return self._mth(0, self._size(size))

    def inclusion_proof(self, index: int, size: int | None = None) -> list[bytes]:
        size = self._size(size)
        if not 0 <= index < size:
            raise ValueError(f"leaf index {index} is outside 0..{size - 1}")
        return self._path(index, 0, size)

    def _path(self, m: int, lo: int, hi: int) -> list[bytes]:
        n = hi - lo
        if n <= 1:
            return []
        k = _split(n)
        if m < k:
            return self._path(m, lo, lo + k) + [self._mth(lo + k, hi)]
        return self._path(m - k, lo + k, hi) + [self._mth(lo, lo + k)]

    def consistency_proof(self, size1: int, size2: int | None = None) -> list[bytes]:
        size2 = self._size(size2)
        if not 0 <= size1 <= size2:
            raise ValueError(f"first tree size {size1} is outside 0..{size2}")
        if size1 in (0, size2):
            return []
        return self._subproof(size1, 0, size2, True)

    def _subproof(self, m: int, lo: int, hi: int, whole: bool) -> list[bytes]:
        n = hi - lo
        if m == n:
            return [] if whole else [self._mth(lo, hi)]
        k = _split(n)
        if m <= k:
            return self._subproof(m, lo, lo + k, whole) + [self._mth(lo + k, hi)]
        return self._subproof(m - k, lo + k, hi, False) + [self._mth(lo, lo + k)]


def roots_at(leaves: Iterable[bytes], sizes: Iterable[int]) -> dict[int, bytes]:
    """Roots of the prefixes of the given sizes, in one pass (a compact range of perfect subtrees)."""
    wanted = set(sizes)
    out: dict[int, bytes] = {}
    if 0 in wanted:
        out[0] = EMPTY_ROOT
    stack: list[tuple[int, bytes]] = []  # (height, hash) of perfect subtrees, left to right
    n = 0
    for leaf in leaves:
        n += 1
        height, h = 0, leaf
        while stack and stack[-1][0] == height:
            h = node_hash(stack.pop()[1], h)
            height += 1
        stack.append((height, h))
        if n in wanted:
            acc = stack[-1][1]
            for _, left in reversed(stack[:-1]):
                acc = node_hash(left, acc)
            out[n] = acc
    return out


# --- verification (RFC 9162 2.1.3.2 and 2.1.4.2) -----------------------------------------------
def _check_hashes(proof: Sequence[bytes], *roots: bytes) -> None:
    for h in (*proof, *roots):
        if len(h) != HASH_SIZE:
            raise ProofError(f"a hash in the proof is {len(h)} bytes, not {HASH_SIZE}")


def _fold(fn: int, sn: int, seed: bytes, path: Sequence[bytes]) -> tuple[bytes, bytes]:
    """Walk an RFC 9162 (section 2.1.3.2 / 2.1.4.2) audit path from node `fn` of a tree whose
    last node is `sn`: returns (the root of the tree up to fn, the root of the whole tree).
    Inclusion proofs use the second; consistency proofs check both."""
    fr = sr = seed
    for c in path:
        if sn == 0:
            raise ProofError("the proof is longer than the tree is deep")
        if fn & 1 or fn == sn:
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            while not fn & 1 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            sr = node_hash(sr, c)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise ProofError("the proof is shorter than the tree is deep")
    return fr, sr


def root_from_inclusion(index: int, size: int, leaf: bytes, proof: Sequence[bytes]) -> bytes:
    """The root that `proof` yields for leaf hash `leaf` at `index` in a tree of `size` leaves."""
    _check_hashes(proof, leaf)
    if not 0 <= index < size:
        raise ProofError(f"leaf index {index} is outside a tree of {size} leaves")
    return _fold(index, size - 1, leaf, proof)[1]


def verify_inclusion(index: int, size: int, leaf: bytes, proof: Sequence[bytes], root: bytes) -> None:
    _check_hashes((), root)
    if root_from_inclusion(index, size, leaf, proof) != root:
        raise ProofError(f"inclusion proof for leaf {index} does not lead to the root of the {size}-leaf tree")


def verify_consistency(size1: int, size2: int, proof: Sequence[bytes], root1: bytes, root2: bytes) -> None:
    _check_hashes(proof, root1, root2)
    if not 0 <= size1 <= size2:
        raise ProofError(f"tree size {size1} cannot precede tree size {size2}")
    if size1 == size2 or size1 == 0:
        if proof:
            raise ProofError("a proof was given where none is needed")
        if size1 == size2 and root1 != root2:
            raise ProofError(f"two different roots for the same tree size {size1}")
        return
    if not proof:
        raise ProofError("the consistency proof is empty")
    path = list(proof)
    if size1 & (size1 - 1) == 0:  # size1 is a power of two: its root is a node of the new tree
        path.insert(0, root1)
    fn, sn = size1 - 1, size2 - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr, sr = _fold(fn, sn, path[0], path[1:])
    if fr != root1:
        raise ProofError(f"the proof does not lead to the root of the {size1}-leaf tree")
    if sr != root2:
        raise ProofError(f"the proof does not lead to the root of the {size2}-leaf tree")
