"""The file store: an append-only JSONL file, one signed, hash-chained record per line.

This is the only module that opens a ledger file. Appends happen under an exclusive lock on
the file and are fsynced before the lock is released, so concurrent tfaudit processes on one
machine never interleave lines or fork the chain; a batch that cannot be written whole is cut
back off (the file is truncated to its size before the batch, under the lock), so the ledger is
exactly as it was. Readers take a shared lock just long enough to fix the size they read up to
(a snapshot). A torn tail (a power loss mid-write) is refused by appends until
`tfaudit ledger repair` moves it aside (`tfaudit.trail.repair`).
"""

from __future__ import annotations

import fcntl
import os
from itertools import islice
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from tfaudit.errors import InputError, LedgerError, LedgerNotFound
from tfaudit.schema import validate_record
from tfaudit.trail import filelines
from tfaudit.trail.certsig import for_batch
from tfaudit.trail.jsonline import MAX_LINE_BYTES
from tfaudit.trail.repair import TornTail, digest, quarantine_path
from tfaudit.trail.signing import Signer, line_digest, seal_line
from tfaudit.trail.store import Appended, Tail, parsed_records


def seal_batch(records: Sequence[Mapping[str, Any]], tail: Tail, signer: Signer) -> list[Appended]:
    """Chain records onto `tail`, sign and validate each: what every store appends. A signer that
    certifies batches (AWS KMS) is called once here, for the batch key's certificate."""
    seq, prev = tail.seq, tail.digest
    signer = for_batch(signer, seq + 1, seq + len(records), prev) if records else signer
    out: list[Appended] = []
    for rec in records:
        seq += 1
        body = {k: v for k, v in rec.items() if k not in ("chain", "signature")}
        body["chain"] = {"seq": seq, "prev": prev}
        sealed, line = seal_line(body, signer)
        validate_record(sealed)
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
        return self.snapshot(missing_ok=True).tail()

    def snapshot(self, *, missing_ok: bool = False) -> FileView:
        """The ledger as committed now: its size and tail read under a shared lock (appends hold
        the exclusive one, so a half-written batch is never seen)."""
        fd = self._open_read(missing_ok)
        if fd is None:
            return FileView(self, 0, Tail(0, None))
        try:
            fcntl.flock(fd, fcntl.LOCK_SH)
            size = os.fstat(fd).st_size
            return FileView(self, size, self._read_tail(fd, size, strict=False))
        finally:
            os.close(fd)

    # -- opening ----------------------------------------------------------------
    def _open_read(self, missing_ok: bool = False) -> int | None:
        try:
            return os.open(self.path, os.O_RDONLY)
        except FileNotFoundError:
            if missing_ok:
                return None
            raise LedgerNotFound(f"ledger {self.path} does not exist",
                                 hint="check the path, or run a wrapped command first") from None
        except OSError as e:
            raise InputError(f"cannot read the ledger {self.path}: {e.strerror}",
                             hint="check the path and its permissions") from e

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

    @contextmanager
    def locked(self) -> Iterator[int]:
        """The ledger open for writing under its exclusive lock (appends and repairs)."""
        fd = self._open_for_append()
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield fd
        finally:
            os.close(fd)

    # -- writing ----------------------------------------------------------------
    def check_writable(self) -> None:
        """Fail early (before terraform changes anything) when appends would fail."""
        with self.locked() as fd:
            self._read_tail(fd, os.fstat(fd).st_size)

    def append(self, records: Sequence[Mapping[str, Any]], signer: Signer) -> list[Appended]:
        """Chain, sign, validate and durably append records, in order, as one locked write.
        All or nothing: a batch that cannot be written whole is cut back off."""
        if not records:
            return []
        with self.locked() as fd:
            size = os.fstat(fd).st_size
            out = seal_batch(records, self._read_tail(fd, size), signer)
            write_whole(fd, self.path, size, b"".join(a.line + b"\n" for a in out))
            return out

    def append_each(self, records: Iterable[Mapping[str, Any]], signer: Signer) -> Tail:
        """As `append`, for records built one at a time (a big run's): each is sealed and written as it
        comes, in groups of about GROUP_BYTES, under one lock and one fsync, and none is kept. All or
        nothing as `append`: whatever fails (the write, the seal, or building a record) cuts the file
        back. Readers never see the part written, since they read up to the size a shared lock gives.
        A signer that certifies batches (AWS KMS: one call per batch) is given CERTIFIED_BATCH records
        at a time, so a run up to that size is still one call and a bigger one a few."""
        per_batch = CERTIFIED_BATCH if getattr(signer, "certifies_batches", False) else 1
        it = iter(records)
        with self.locked() as fd:
            size = os.fstat(fd).st_size
            tail = self._read_tail(fd, size)
            group: list[bytes] = []
            pending = 0
            try:
                while batch := list(islice(it, per_batch)):
                    for sealed in seal_batch(batch, tail, signer):
                        group.append(sealed.line + b"\n")
                        pending += len(sealed.line) + 1
                    tail = Tail(sealed.seq, line_digest(sealed.line))
                    del batch
                    if pending >= GROUP_BYTES:
                        _write_all(fd, b"".join(group))
                        group, pending = [], 0
                _write_all(fd, b"".join(group))
                os.fsync(fd)
            except BaseException as e:
                _cut_back(fd, size)
                if isinstance(e, OSError):
                    raise LedgerError(f"cannot write the ledger {self.path}: {e.strerror}; the batch was not "
                                      "written", hint="free disk space or fix permissions; the ledger is as it was "
                                      "before this batch") from e
                raise
            return tail

    def cut_torn_tail(self, make_record: Callable[[TornTail, Tail], Mapping[str, Any]],
                      signer: Signer) -> tuple[TornTail, Appended] | None:
        """Move the bytes after the last newline into a quarantine file and append the record
        `make_record` builds for them, under the lock; None when the ledger ends cleanly. The
        quarantine file is durable before the ledger is cut, so the bytes are never lost."""
        with self.locked() as fd:
            size = os.fstat(fd).st_size
            start = filelines.last_newline_end(fd, size)
            if start == size:
                return None
            torn = os.pread(fd, size - start, start)
            tail = self._read_tail(fd, start)
            cut = TornTail(start, size, digest(torn), quarantine_path(self.path, start, size))
            self._keep(cut.quarantine, torn)
            sealed = seal_batch([make_record(cut, tail)], tail, signer)
            try:
                os.ftruncate(fd, start)
                os.fsync(fd)
            except OSError as e:
                raise LedgerError(f"cannot cut the torn tail of {self.path}: {e.strerror}",
                                  hint="fix its permissions; the torn bytes are also in " + str(cut.quarantine)) from e
            write_whole(fd, self.path, start, b"".join(a.line + b"\n" for a in sealed))
            return cut, sealed[0]

    def _keep(self, path: Path, data: bytes) -> None:
        try:
            qfd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
            try:
                written = 0
                while written < len(data):
                    written += os.write(qfd, data[written:])
                os.fsync(qfd)
            finally:
                os.close(qfd)
            _fsync_dir(path.parent)
        except OSError as e:
            raise LedgerError(f"cannot write the quarantine file {path}: {e.strerror}",
                              hint="free disk space or fix the directory's permissions; the ledger was not changed") from e

    def _read_tail(self, fd: int, size: int, *, strict: bool = True) -> Tail:
        """The tail at `size`. A torn or foreign last line is an error for writers (`strict`); for
        readers the tail is then the last line that is a record, if any (verify reports the rest)."""
        if size == 0:
            return Tail(0, None)
        last = filelines.last_line(fd, size)
        if last is None:
            if not strict:
                return self._read_tail(fd, filelines.last_newline_end(fd, size), strict=False)
            raise LedgerError(
                f"the ledger {self.path} ends with an incomplete line (a crash while writing, or tampering)",
                hint="run 'tfaudit verify' on it, then 'tfaudit ledger repair' to move the torn bytes aside",
            )
        seq = filelines.seq_of(last)
        if seq is None:
            if not strict:
                return Tail(0, None)
            raise LedgerError(
                f"the last line of the ledger {self.path} is not a tfaudit record",
                hint="run 'tfaudit verify' on it, or point --ledger at a tfaudit ledger",
            )
        return Tail(seq, line_digest(last))

    # -- reading ----------------------------------------------------------------
    def lines(self, start: int = 1) -> Iterator[tuple[int, bytes]]:
        """(position, raw line as on disk, with its newline) for every line from `start` on;
        a final line with no newline is included as it is."""
        return self.snapshot().lines(start)

    def lines_backward(self) -> Iterator[tuple[int, bytes]]:
        """(position, raw line as on disk), newest first, reading the file from its end."""
        return self.snapshot(missing_ok=True).lines_backward()

    def records(self) -> Iterator[dict[str, Any]]:
        """Parsed records, skipping lines that are not JSON (use verify to find those)."""
        return parsed_records(self.lines())


class FileView:
    """The file store fixed at a byte size (see `Ledger.snapshot`): reads stop there."""

    def __init__(self, ledger: Ledger, size: int, tail: Tail) -> None:
        self.ledger, self.size, self._tail = ledger, size, tail

    def tail(self) -> Tail:
        return self._tail

    def lines(self, start: int = 1) -> Iterator[tuple[int, bytes]]:
        fd = self.ledger._open_read()
        assert fd is not None
        try:
            offset, n = 0, 1
            if start > 1:
                found = filelines.seek_seq(fd, self.size, start)
                if found is not None:
                    offset, n = found, start
            for raw in filelines.forward(fd, offset, self.size):
                if n >= start:
                    yield n, raw
                n += 1
        finally:
            os.close(fd)

    def spans(self, offset: int = 0) -> Iterator[tuple[int, bytes]]:
        """(byte offset, raw line) for every line from byte `offset` (a line's start) on: for caches
        that remember where lines are (tfaudit.query.runindex)."""
        fd = self.ledger._open_read()
        assert fd is not None
        try:
            yield from filelines.forward_spans(fd, offset, self.size)
        finally:
            os.close(fd)

    def read_at(self, spans: Iterable[tuple[int, int]]) -> list[bytes]:
        """The bytes at each (offset, length), cut at the view's size; one descriptor for all."""
        fd = self.ledger._open_read()
        assert fd is not None
        try:
            return [os.pread(fd, max(0, min(n, self.size - at)), at) for at, n in spans]
        finally:
            os.close(fd)

    def split(self, parts: int) -> list[tuple[int, int]]:
        """Byte ranges [start, end) that cover the view in order, each starting at a line's start:
        at most `parts` of about equal size (a worker each reads its own; see tfaudit.trail.workers)."""
        if self.size == 0:
            return []
        fd = self.ledger._open_read()
        assert fd is not None
        try:
            cuts = sorted({filelines.next_line_start(fd, self.size * i // parts, self.size) for i in range(parts)})
        finally:
            os.close(fd)
        return [(a, b) for a, b in zip(cuts, [*cuts[1:], self.size]) if a < b]

    def range_lines(self, start: int, end: int) -> Iterator[bytes]:
        """The raw lines of the byte range [start, end) (one of `split`'s), as `lines` gives them."""
        fd = self.ledger._open_read()
        assert fd is not None
        try:
            yield from filelines.forward(fd, start, end)
        finally:
            os.close(fd)

    def lines_backward(self) -> Iterator[tuple[int, bytes]]:
        if self.size == 0:
            return
        fd = self.ledger._open_read()
        assert fd is not None
        try:
            n = self._last_position(fd)
            for raw in filelines.backward(fd, self.size):
                yield n, raw
                n -= 1
        finally:
            os.close(fd)

    def _last_position(self, fd: int) -> int:
        """The last line's position: from its chain.seq when the ledger ends in a sound record
        (the common case: no full read), else by counting lines."""
        end = filelines.last_newline_end(fd, self.size)
        last = filelines.last_line(fd, end) if end else None
        seq = filelines.seq_of(last) if last is not None else None
        if seq is not None and self._tail.seq == seq:
            return seq + (1 if end < self.size else 0)
        return sum(1 for _ in filelines.forward(fd, 0, self.size))


GROUP_BYTES = 1 << 20
CERTIFIED_BATCH = 10_000


def _write_all(fd: int, data: bytes) -> None:
    written = 0
    while written < len(data):
        written += os.write(fd, data[written:])


def _cut_back(fd: int, size: int) -> None:
    try:
        os.ftruncate(fd, size)
        os.fsync(fd)
    except OSError:
        pass  # the torn bytes stay: appends refuse them and 'tfaudit ledger repair' moves them aside


def write_whole(fd: int, path: Path, size: int, data: bytes) -> None:
    """Write data at the end of the file (opened O_APPEND, locked, `size` bytes long) and fsync;
    on any failure cut the file back to `size`, so the ledger is exactly as it was."""
    try:
        written = 0
        while written < len(data):
            written += os.write(fd, data[written:])
        os.fsync(fd)
    except OSError as e:
        try:
            os.ftruncate(fd, size)
            os.fsync(fd)
        except OSError:
            pass  # the torn bytes stay: appends refuse them and 'tfaudit ledger repair' moves them aside
        raise LedgerError(f"cannot write the ledger {path}: {e.strerror}; the batch was not written",
                          hint="free disk space or fix permissions; the ledger is as it was before this batch") from e


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
