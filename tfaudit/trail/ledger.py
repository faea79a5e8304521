"""The local ledger: an append-only JSONL file, one signed, hash-chained record per line.

Appends happen under an exclusive lock on the ledger file and are fsynced before the
lock is released, so concurrent tfaudit processes on one machine never interleave
lines or fork the chain. The ledger is never rewritten: a damaged tail is refused,
not repaired.
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from tfaudit.errors import InputError, LedgerError
from tfaudit.schema import validate_record
from tfaudit.trail.jsonline import MAX_LINE_BYTES, BadLine, bounded_lines, parse_line
from tfaudit.trail.signing import Signer, canonical, line_digest, sign_record
from tfaudit.trail.store import Appended, Tail

_TAIL_CHUNK = 64 * 1024


def seal_batch(records: Sequence[Mapping[str, Any]], tail: Tail, signer: Signer) -> list[Appended]:
    """Chain records onto `tail`, sign and validate each: what every store appends."""
    seq, prev = tail.seq, tail.digest
    out: list[Appended] = []
    for rec in records:
        seq += 1
        body = {k: v for k, v in rec.items() if k not in ("chain", "signature")}
        body["chain"] = {"seq": seq, "prev": prev}
        sealed = sign_record(body, signer)
        validate_record(sealed)
        line = canonical(sealed)
        if len(line) > MAX_LINE_BYTES:  # readers refuse longer lines: fail now, not at verify time
            raise LedgerError(f"a {sealed.get('type')} record is {len(line) // 2**20} MiB, over the "
                              f"{MAX_LINE_BYTES // 2**20} MiB a ledger line may hold",
                              hint="exclude the resource's huge values (or split the change)")
        out.append(Appended(sealed, line))
        prev = line_digest(line)
    return out


class Ledger:
    """The file store (see tfaudit.trail.store): one JSONL file, appended under flock."""

    def __init__(self, path: Path) -> None:
        self.path = path

    @classmethod
    def from_url(cls, url: str, env: Mapping[str, str]) -> Ledger:
        text = url[len("file://"):] if url.startswith("file://") else url
        return cls(Path(text).expanduser().resolve())

    def __repr__(self) -> str:
        return f"Ledger({str(self.path)!r})"

    @property
    def url(self) -> str:
        return str(self.path)

    @property
    def local_path(self) -> Path | None:
        return self.path

    def exists(self) -> bool:
        return self.path.is_file()

    def tail(self) -> Tail:
        try:
            fd = os.open(self.path, os.O_RDONLY)
        except FileNotFoundError:
            return Tail(0, None)
        except OSError as e:
            raise InputError(f"cannot read the ledger {self.path}: {e.strerror}", hint="check the path and its permissions") from e
        try:
            return self._read_tail(fd)
        finally:
            os.close(fd)

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
            out = seal_batch(records, self._read_tail(fd), signer)
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
            rec = parse_line(last)  # BadLine is a ValueError
            seq = int(rec["chain"]["seq"])
        except (ValueError, KeyError, TypeError) as e:
            raise LedgerError(
                f"the last line of the ledger {self.path} is not a tfaudit record",
                hint="run 'tfaudit verify' on it, or point --ledger at a tfaudit ledger",
            ) from e
        return Tail(seq, line_digest(last))

    # -- reading ----------------------------------------------------------------
    def lines(self, start: int = 1) -> Iterator[tuple[int, bytes]]:
        """(line number, raw line as on disk, with its newline) for every line from `start` on;
        a final line with no newline is included as it is."""
        try:
            f = self.path.open("rb")
        except FileNotFoundError:
            raise InputError(f"ledger {self.path} does not exist", hint="check the path, or run a wrapped command first") from None
        except OSError as e:
            raise InputError(f"cannot read the ledger {self.path}: {e.strerror}", hint="check the path and its permissions") from e
        with f:  # bounded: a line over MAX_LINE_BYTES is cut there (the reader reports it as too long)
            for n, raw in enumerate(bounded_lines(f), start=1):
                if n >= start:
                    yield n, raw

    def lines_backward(self) -> Iterator[tuple[int, bytes]]:
        """(line number, raw line as on disk), newest first, reading the file from its end."""
        n_total = sum(1 for _ in self.lines())
        n = n_total
        try:
            fd = os.open(self.path, os.O_RDONLY)
        except FileNotFoundError:
            return
        try:
            pos = os.fstat(fd).st_size
            trailing_nl = pos > 0 and os.pread(fd, 1, pos - 1) == b"\n"
            buf = b""
            while pos > 0:
                step = min(_TAIL_CHUNK, pos)
                pos -= step
                buf = os.pread(fd, step, pos) + buf
                parts = buf.split(b"\n")
                buf = parts[0]
                for i, part in enumerate(reversed(parts[1:])):
                    if part:
                        yield n, part + (b"" if i == 0 and not trailing_nl else b"\n")
                        n -= 1
                trailing_nl = True
            if buf:
                yield n, buf + (b"\n" if trailing_nl else b"")
        finally:
            os.close(fd)

    def records(self) -> Iterator[dict[str, Any]]:
        """Parsed records, skipping lines that are not JSON (use verify to find those)."""
        for _, raw in self.lines():
            try:
                yield parse_line(raw)
            except BadLine:
                continue


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
