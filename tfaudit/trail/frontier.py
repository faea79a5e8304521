"""The Merkle tree's right edge, kept between runs so anchoring costs the new records only.

A tree of n leaves is fully described, for extending it, by its *frontier*: the hashes of the
perfect subtrees of n's binary decomposition, largest first (at most log2(n)+1 hashes). From
the frontier at size m and the leaves after it, `ExtendedTree` gives the root at any size from
m up, and the RFC 9162 consistency proof from any size p >= m, exactly as the full tree would
(tests compare the two). After each anchor the frontier is written beside the ledger
(`LEDGER.merkle`; for shared stores, in the user's cache directory: `store.sidecar_path`) with the digest of its last
line; the next anchor uses it only if that line is still there with that digest, and falls
back to hashing the whole ledger otherwise.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from tfaudit.trail import merkle
from tfaudit.trail.store import save_sidecar


class MissingNode(Exception):
    """The extended tree was asked for a hash inside the known part that the frontier does not hold."""


def spans(size: int) -> list[tuple[int, int]]:
    """The [lo, hi) ranges of the perfect subtrees of size's binary decomposition, largest first."""
    out, lo = [], 0
    for bit in range(size.bit_length() - 1, -1, -1):
        if size >> bit & 1:
            out.append((lo, lo + (1 << bit)))
            lo += 1 << bit
    return out


@dataclass(frozen=True)
class Frontier:
    size: int
    nodes: tuple[bytes, ...]  # one hash per span of `size`, left to right

    @classmethod
    def of_leaves(cls, leaves: Iterable[bytes], base: Frontier | None = None) -> Frontier:
        """The frontier after appending leaf hashes to `base` (the empty tree when None): O(new + log n)."""
        stack: list[tuple[int, bytes]] = []
        size = 0
        if base is not None:
            stack = [((hi - lo).bit_length() - 1, h) for (lo, hi), h in zip(spans(base.size), base.nodes)]
            size = base.size
        for leaf in leaves:
            size += 1
            height, h = 0, leaf
            while stack and stack[-1][0] == height:
                h = merkle.node_hash(stack.pop()[1], h)
                height += 1
            stack.append((height, h))
        return cls(size, tuple(h for _, h in stack))

    def root(self) -> bytes:
        if not self.nodes:
            return merkle.EMPTY_ROOT
        acc = self.nodes[-1]
        for left in reversed(self.nodes[:-1]):
            acc = merkle.node_hash(left, acc)
        return acc


class ExtendedTree(merkle.Tree):
    """A tree whose first `frontier.size` leaves are known only by their frontier."""

    def __init__(self, frontier: Frontier, new_leaves: Sequence[bytes]) -> None:
        super().__init__(new_leaves)
        self.base = frontier.size
        self.frontier = frontier
        self._known = dict(zip(spans(frontier.size), frontier.nodes))

    @property
    def size(self) -> int:
        return self.base + len(self.leaves)

    def _mth(self, lo: int, hi: int) -> bytes:
        if hi <= self.base and (lo, hi) in self._known:
            return self._known[(lo, hi)]
        n = hi - lo
        if n == 0:
            return merkle.EMPTY_ROOT
        if n == 1:
            if lo < self.base:
                raise MissingNode(f"leaf {lo} is below the frontier at {self.base}")
            return self.leaves[lo - self.base]
        k = 1 << ((n - 1).bit_length() - 1)
        return merkle.node_hash(self._mth(lo, lo + k), self._mth(lo + k, hi))

    def extended_frontier(self) -> Frontier:
        return Frontier.of_leaves(self.leaves, self.frontier)


# --- kept between runs ----------------------------------------------------------------------------
@dataclass(frozen=True)
class Saved:
    frontier: Frontier
    line_digest: str  # digest of line `frontier.size` (tfaudit.trail.signing.line_digest), to check it is still there


def load(path: Path) -> Saved | None:
    """The saved frontier, or None when there is none or it does not parse (the caller recomputes)."""
    try:
        doc = json.loads(path.read_bytes())
        size, digest = doc["size"], doc["line"]
        nodes = tuple(base64.b64decode(h, validate=True) for h in doc["nodes"])
    except (OSError, ValueError, KeyError, TypeError, binascii.Error):
        return None
    if not isinstance(size, int) or size < 1 or not isinstance(digest, str) or len(nodes) != len(spans(size)) \
            or any(len(h) != merkle.HASH_SIZE for h in nodes):
        return None
    return Saved(Frontier(size, nodes), digest)


def save(path: Path, saved: Saved) -> None:
    doc = {"version": 1, "size": saved.frontier.size, "line": saved.line_digest,
           "nodes": [base64.b64encode(h).decode() for h in saved.frontier.nodes]}
    save_sidecar(path, json.dumps(doc) + "\n")
