"""The ledger store interface: where the signed, hash-chained lines live.

Every module that reads or writes a ledger goes through a `LedgerStore`. The file store
(`tfaudit.trail.ledger`) is the default for one machine; shared stores (S3 with conditional
writes, PostgreSQL) implement the same interface so that many machines append to one trail.

The contract, which every store keeps:
- `append(records, signer)` is a compare-and-append on the tail: the store reads its tail,
  chains and signs the batch onto it (`tfaudit.trail.ledger.seal_batch`), and commits the
  batch only if the tail is still the one it read. A writer that loses a race re-reads the
  tail, re-seals and retries. The batch lands whole or not at all. No lock is held across
  calls, and none is needed while terraform runs.
- `lines(start)` reads forward from chain position `start` (1-based), `lines_backward()`
  from the newest line; both yield (position, the exact line bytes as stored, with the
  trailing newline when the line has one; a torn last line has none).
- `snapshot()` fixes a consistent view: reading through it never sees lines appended after.
- `tail()` is the last position and the digest of its line (what the next record chains to).

Stores are chosen by URL: a path or `file://` (the file store), `s3://BUCKET/PREFIX`,
`postgresql://...`. `open_store` imports a store's module only when its scheme is used, so
the file store never imports boto3 or psycopg.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from tfaudit.errors import UsageError

if TYPE_CHECKING:
    from tfaudit.trail.signing import Signer


@dataclass(frozen=True)
class Appended:
    """A record as written: its final form (with chain and signature) and its exact line."""

    record: Mapping[str, Any]
    line: bytes

    @property
    def seq(self) -> int:
        return int(self.record["chain"]["seq"])


@dataclass(frozen=True)
class Tail:
    """The newest position of a chain (0 when empty) and the digest of its line (None when empty)."""

    seq: int
    digest: str | None


@runtime_checkable
class LedgerStore(Protocol):
    """What tfaudit needs of a place that keeps the trail (see the module docstring)."""

    @property
    def url(self) -> str:
        """How the user names this store (a path or a URL), for messages."""
        ...

    @property
    def local_path(self) -> Path | None:
        """The file behind a file store; None for shared stores."""
        ...

    def exists(self) -> bool: ...

    def check_writable(self) -> None:
        """Raise LedgerError now (before terraform changes anything) when appends would fail."""
        ...

    def tail(self) -> Tail: ...

    def append(self, records: Sequence[Mapping[str, Any]], signer: Signer) -> list[Appended]:
        """Chain, sign, validate and durably append records as one all-or-nothing batch."""
        ...

    def lines(self, start: int = 1) -> Iterator[tuple[int, bytes]]:
        """(position, raw line as stored) from position `start` on, oldest first."""
        ...

    def lines_backward(self) -> Iterator[tuple[int, bytes]]:
        """(position, raw line as stored), newest first."""
        ...

    def records(self) -> Iterator[dict[str, Any]]:
        """Parsed records, oldest first, skipping lines that are not JSON objects (verify finds those)."""
        ...


# scheme -> "module:Class"; each class is built with `Class.from_url(url, env)`
STORES: dict[str, str] = {
    "file": "tfaudit.trail.ledger:Ledger",
    "s3": "tfaudit.trail.stores.s3:S3Store",
    "postgresql": "tfaudit.trail.stores.postgres:PostgresStore",
}


def scheme_of(url: str) -> str:
    head, sep, _ = url.partition("://")
    if not sep or len(head) < 2:  # a plain path (or a Windows drive letter)
        return "file"
    return head.lower()


def open_store(url: str | Path, env: Mapping[str, str] | None = None) -> LedgerStore:
    """The store a path or URL names. Unknown schemes are a usage error naming the known ones."""
    text = str(url)
    scheme = scheme_of(text)
    if scheme == "postgres":
        scheme = "postgresql"
    target = STORES.get(scheme)
    if target is None:
        known = ", ".join(f"{s}://" for s in sorted(STORES) if s != "file")
        raise UsageError(f"unknown ledger store {text!r}",
                         hint=f"give a file path{', or one of ' + known if known else ''}")
    mod, _, cls = target.partition(":")
    store: LedgerStore = getattr(importlib.import_module(mod), cls).from_url(text, os.environ if env is None else env)
    return store
