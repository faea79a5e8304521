"""The local ledger: an append-only JSONL file, one signed, hash-chained record per line.

Appends happen under an exclusive lock on the ledger file and are fsynced before the
lock is released, so concurrent tfaudit processes on one machine never interleave
lines or fork the chain. The ledger is never rewritten: a damaged tail is refused,
not repaired.
"""

from __future__ import annotations

import fcntl
import json
import os
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tfaudit.errors import InputError, LedgerError
from tfaudit.schema import validate_record
from tfaudit.trail.signing import Signer, canonical, line_digest, sign_record

_TAIL_CHUNK = 64 * 1024


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
    seq: int
    digest: str | None


class Ledger:
    def __init__(self, path: Path) -> None:
        self.path = path

    def __repr__(self) -> str:
        return f"Ledger({str(self.path)!r})"

    # -- writing ----------------------------------------------------------------
    def _open_for_append(self) -> int:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            created = not self.path.exists()
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o644)
            if created:  # a new file is durable only once its directory entry is
                _fsync_dir(self.path.parent)
            return fd
        except FileExistsError as e:  # mkdir met a file where a directory should be
            raise LedgerError(f"cannot write the ledger {self.path}: Not a directory ({e.filename} is a file)",
                              hint="choose another path with --ledger") from e
        except OSError as e:
            raise LedgerError(
                f"cannot write the ledger {self.path}: {e.strerror}",
                hint="fix its permissions or choose another path with --ledger",
            ) from e

    def check_writable(self) -> None:
        """Fail early (before terraform changes anything) when appends would fail."""
        fd = self._open_for_append()
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            self._read_tail(fd)
        finally:
            os.close(fd)

    def append(self, records: Sequence[Mapping[str, Any]], signer: Signer) -> list[Appended]:
        """Chain, sign, validate and durably append records, in order, as one locked write."""
        if not records:
            return []
        fd = self._open_for_append()
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            tail = self._read_tail(fd)
            seq, prev = tail.seq, tail.digest
            out: list[Appended] = []
            for rec in records:
                seq += 1
                body = {k: v for k, v in rec.items() if k not in ("chain", "signature")}
                body["chain"] = {"seq": seq, "prev": prev}
                sealed = sign_record(body, signer)
                validate_record(sealed)
                line = canonical(sealed)
                out.append(Appended(sealed, line))
                prev = line_digest(line)
            data = b"".join(a.line + b"\n" for a in out)
            try:
                written = 0
                while written < len(data):
                    written += os.write(fd, data[written:])
                os.fsync(fd)
            except OSError as e:
                raise LedgerError(f"cannot write the ledger {self.path}: {e.strerror}",
                                  hint="free disk space or fix permissions; nothing before this run was changed") from e
            return out
        finally:
            os.close(fd)

    def _read_tail(self, fd: int) -> Tail:
        size = os.fstat(fd).st_size
        if size == 0:
            return Tail(0, None)
        last = _last_line(fd, size)
        if last is None:
            raise LedgerError(
                f"the ledger {self.path} ends with an incomplete line (a crash while writing, or tampering)",
                hint="run 'tfaudit verify' on it; tfaudit will not append after a damaged tail",
            )
        try:
            rec = json.loads(last)
            seq = int(rec["chain"]["seq"])
        except (ValueError, KeyError, TypeError) as e:
            raise LedgerError(
                f"the last line of the ledger {self.path} is not a tfaudit record",
                hint="run 'tfaudit verify' on it, or point --ledger at a tfaudit ledger",
            ) from e
        return Tail(seq, line_digest(last))

    # -- reading ----------------------------------------------------------------
    def lines(self) -> Iterator[tuple[int, bytes]]:
        """(line number, raw line without newline) for every line; a final line with no newline is included."""
        try:
            f = self.path.open("rb")
        except FileNotFoundError:
            raise InputError(f"ledger {self.path} does not exist", hint="check the path, or run a wrapped command first") from None
        except OSError as e:
            raise InputError(f"cannot read the ledger {self.path}: {e.strerror}", hint="check the path and its permissions") from e
        with f:
            for n, raw in enumerate(f, start=1):
                yield n, raw

    def records(self) -> Iterator[dict[str, Any]]:
        """Parsed records, skipping lines that are not JSON (use verify to find those)."""
        for _, raw in self.lines():
            try:
                rec = json.loads(raw)
            except ValueError:
                continue
            if isinstance(rec, dict):
                yield rec


def _fsync_dir(path: Path) -> None:
    try:
        dfd = os.open(path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        return  # some filesystems cannot open directories; the file's own fsync still happens
    try:
        os.fsync(dfd)
    except OSError:
        pass
    finally:
        os.close(dfd)


def _last_line(fd: int, size: int) -> bytes | None:
    """The last complete line (without newline), or None if the file does not end in a newline."""
    end = size
    buf = b""
    pos = size
    while pos > 0:
        step = min(_TAIL_CHUNK, pos)
        pos -= step
        buf = os.pread(fd, step, pos) + buf
        if end == size:
            if not buf.endswith(b"\n"):
                return None
        idx = buf.rfind(b"\n", 0, len(buf) - 1)
        if idx >= 0:
            return buf[idx + 1 : -1]
    return buf[:-1]
