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
  trailing newline when the line has one; a torn last line has none). Reading from `start`
  costs what is read, not what is skipped (a store seeks: the file store searches its lines
  by `chain.seq`, a database by key), so readers that only want the newest records (the
  out-of-band check, delivery, anchoring, a CI step's summary) stay O(their records).
- `snapshot()` fixes a consistent view (a `LedgerView`): its `tail()` and everything read
  through it stop at the lines that were committed when it was taken, even while others
  append. Readers that need two answers to agree (a tree size and its root; a tail and the
  lines before it) read one snapshot.
- `tail()` is the last position and the digest of its line (what the next record chains to).
- Errors: a store that does not exist raises `LedgerNotFound` from the reads (exit 64, like any
  missing input), except that `tail()` of a missing store is `Tail(0, None)` (a new ledger);
  a store that cannot be read raises `InputError` (64); one that cannot be written (appends,
  `check_writable`) raises `LedgerError` (exit 4). Stores convert their library's errors
  (OSError, botocore, psycopg) into these where they enter.

Stores are chosen by URL: a path or `file://` (the file store), `s3://BUCKET/PREFIX`,
`postgresql://...`. `open_store` imports a store's module only when its scheme is used, so
the file store never imports boto3 or psycopg.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from tfaudit.errors import LedgerNotFound, UsageError

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
class LedgerView(Protocol):
    """Reading one consistent picture of a trail (what `LedgerStore.snapshot()` returns)."""

    def tail(self) -> Tail:
        """The newest committed position in this view and its line's digest."""
        ...

    def lines(self, start: int = 1) -> Iterator[tuple[int, bytes]]:
        """(position, raw line as stored) from position `start` to this view's tail, oldest first."""
        ...

    def lines_backward(self) -> Iterator[tuple[int, bytes]]:
        """(position, raw line as stored) from this view's tail back to position 1."""
        ...


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

    def snapshot(self) -> LedgerView:
        """A view fixed at the lines committed now (see the module docstring)."""
        ...


@runtime_checkable
class EachAppender(Protocol):
    """A store that also appends a batch built one record at a time, keeping none of it (the file
    store: a 100,000-change run's records are never all in memory)."""

    def append_each(self, records: Iterable[Mapping[str, Any]], signer: Signer) -> Tail:
        """As `LedgerStore.append`, reading `records` once; returns the new tail."""
        ...


def parsed_records(lines: Iterable[tuple[int, bytes]]) -> Iterator[dict[str, Any]]:
    """The records among (position, line) pairs, read by the strict line reader (tfaudit.trail.jsonline),
    skipping lines that are not strict JSON objects (verify reports them): no line can crash a reader."""
    from tfaudit.trail.jsonline import BadLine, parse_line

    for _, raw in lines:
        try:
            yield parse_line(raw)
        except BadLine:
            continue


class SeqView:
    """A snapshot for stores whose positions are chain seqs and whose lines never change once
    committed (S3, PostgreSQL): the tail is read once, and reads stop at it."""

    def __init__(self, store: LedgerStore) -> None:
        self._store = store
        self._tail = store.tail()

    def tail(self) -> Tail:
        return self._tail

    def lines(self, start: int = 1) -> Iterator[tuple[int, bytes]]:
        if start > self._tail.seq:
            return
        for n, raw in self._store.lines(start):
            if n > self._tail.seq:
                return
            yield n, raw

    def lines_backward(self) -> Iterator[tuple[int, bytes]]:
        for n, raw in self._store.lines_backward():
            if n <= self._tail.seq:
                yield n, raw


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


def read_lines(ledger: str | Path | LedgerView) -> list[bytes]:
    """Every line of a ledger (a path, a URL or a snapshot) without its newline, a torn last line
    included: the Merkle tree's leaves. A missing ledger raises LedgerNotFound (exit 64)."""
    view = open_store(ledger).snapshot() if isinstance(ledger, (str, Path)) else ledger
    return [raw[:-1] if raw.endswith(b"\n") else raw for _, raw in view.lines()]


def open_existing(url: str | Path, env: Mapping[str, str] | None = None) -> LedgerStore:
    """The store a reading command was given, which must exist: LedgerNotFound (exit 64) otherwise."""
    store = open_store(url, env)
    if not store.exists():
        raise LedgerNotFound(f"ledger {store.url} does not exist",
                             hint="check the path (or --ledger), or run a wrapped command first")
    return store


def sidecar_path(ledger: LedgerStore, suffix: str, env: Mapping[str, str]) -> Path:
    """Where a cache derived from a ledger lives (the Merkle frontier, the plan index): beside a file
    ledger (`LEDGER.suffix`); for a shared store, in the user's cache directory, keyed by its URL.
    Such caches only ever save time: readers check them against the ledger before use."""
    import hashlib

    path = ledger.local_path
    if path is not None:
        return path.with_name(f"{path.name}.{suffix}")
    cache = Path(env.get("XDG_CACHE_HOME") or Path(env.get("HOME") or Path.home()) / ".cache")
    return cache / "tfaudit" / f"{suffix}-{hashlib.sha256(ledger.url.encode()).hexdigest()[:16]}.json"


def save_sidecar(path: Path, text: str) -> None:
    """Write a cache atomically (a temporary file renamed over the old one); failing only costs speed."""
    import os

    tmp = path.with_name(f"{path.name}.tmp-{os.getpid()}")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp.write_text(text)
        os.replace(tmp, path)
    except OSError:
        try:
            tmp.unlink()
        except OSError:
            pass
