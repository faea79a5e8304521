"""Setting up a shared store and moving an existing file ledger into one.

`init_store`: PostgreSQL creates or migrates its tables (versioned); S3 needs nothing but a
bucket, so it checks that the bucket answers. `import_file`: the file's exact lines go into an
empty store at their own positions (chain.seq and chain.prev untouched, signatures intact), so
the store's chain *is* the file's chain, continued by the next append; `tfaudit verify URL`
checks the imported records exactly like the ones appended later (pass the public keys of both
the file's and the runners' signers). Importing into a store that already holds records is
refused: two chains cannot become one without rewriting one of them.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, runtime_checkable

from tfaudit.errors import InputError, UsageError
from tfaudit.trail.signing import line_digest
from tfaudit.trail.store import LedgerStore, open_existing
from tfaudit.trail.jsonline import parse_line


@runtime_checkable
class Importable(Protocol):
    def import_lines(self, lines: list[bytes]) -> int: ...


@runtime_checkable
class Initializable(Protocol):
    def init(self) -> tuple[int, int]: ...


@dataclass(frozen=True)
class Imported:
    source: str
    target: str
    records: int
    head: str | None


def init_store(store: LedgerStore) -> str:
    """Create or migrate what the store needs; a one-line description of what was done."""
    if isinstance(store, Initializable):
        before, after = store.init()
        if before == after:
            return f"{store.url}: ledger schema version {after} is current"
        return f"{store.url}: ledger schema {'created' if before == 0 else f'migrated from version {before}'} (version {after})"
    store.check_writable()
    return f"{store.url}: ready (nothing to create)"


def read_chain(path: Path) -> list[bytes]:
    """The file's lines, refused unless they form one unbroken chain from seq 1 (signatures are
    left to `tfaudit verify`, which needs the public keys)."""
    lines: list[bytes] = []
    prev: str | None = None
    for n, raw in open_existing(path).snapshot().lines():
        if not raw.endswith(b"\n"):
            raise InputError(f"{path}: line {n} is incomplete (a torn write)",
                             hint=f"run 'tfaudit verify {path}'; only an intact ledger can be imported")
        line = raw[:-1]
        try:
            chain = parse_line(line)["chain"]  # strict: BadLine is a ValueError
            seq, pprev = chain["seq"], chain["prev"]
        except (ValueError, KeyError, TypeError) as e:
            raise InputError(f"{path}: line {n} is not a tfaudit record",
                             hint=f"run 'tfaudit verify {path}'; only an intact ledger can be imported") from e
        if seq != n or pprev != prev:
            raise InputError(f"{path}: line {n} breaks the chain (seq {seq}, or its prev digest does not match)",
                             hint=f"run 'tfaudit verify {path}'; only an intact ledger can be imported")
        lines.append(line)
        prev = line_digest(line)
    if not lines:
        raise InputError(f"{path} is empty", hint="nothing to import")
    return lines


def import_file(path: Path, store: LedgerStore) -> Imported:
    if store.local_path is not None or not isinstance(store, Importable):
        raise UsageError(f"{store.url} is not a shared store", hint="import into s3://BUCKET/PREFIX or postgresql://...")
    lines = read_chain(path)
    n = store.import_lines(lines)
    return Imported(str(path), store.url, n, line_digest(lines[-1]))
