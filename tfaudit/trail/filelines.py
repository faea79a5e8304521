"""Reading lines out of an open ledger file by descriptor: the file store's byte-level helpers.

Nothing here opens a file: `tfaudit.trail.ledger` (the only module that opens the ledger)
passes a descriptor and the byte size it may read up to, which is how a snapshot stays
fixed while others append.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator

from tfaudit.trail.jsonline import MAX_LINE_BYTES, bounded_lines, parse_line

CHUNK = 64 * 1024
PROBE = 8 * 1024  # bisection reads this much around a probe, and stops bisecting below twice it
_READ = 1 << 20
# The top-level chain field of a canonical record line; a cheap guide for bisection only (every
# line a seek lands on is confirmed by a full parse).
_CHAIN = re.compile(rb'"chain":\{"prev":(?:null|"sha256:[0-9a-f]{64}"),"seq":([0-9]{1,18})\}')


def last_line(fd: int, size: int) -> bytes | None:
    """The last complete line (without newline), or None if the bytes do not end in a newline."""
    if size == 0:
        return None
    buf = b""
    pos = size
    while pos > 0:
        step = min(CHUNK, pos)
        pos -= step
        buf = os.pread(fd, step, pos) + buf
        if not buf.endswith(b"\n"):
            return None
        idx = buf.rfind(b"\n", 0, len(buf) - 1)
        if idx >= 0:
            return buf[idx + 1 : -1]
    return buf[:-1]


def last_newline_end(fd: int, size: int) -> int:
    """The byte offset just past the last newline before `size` (0 when there is none)."""
    pos = size
    while pos > 0:
        step = min(CHUNK, pos)
        pos -= step
        idx = os.pread(fd, step, pos).rfind(b"\n")
        if idx >= 0:
            return pos + idx + 1
    return 0


def seq_of(line: bytes) -> int | None:
    """chain.seq of a record line, or None when the line is not a record (strictly read: no crash)."""
    try:
        rec = parse_line(line)
        seq = rec["chain"]["seq"]
    except (ValueError, KeyError, TypeError):
        return None
    return seq if isinstance(seq, int) and not isinstance(seq, bool) else None


def _guide_seq(line: bytes) -> int | None:
    m = _CHAIN.search(line)
    return int(m.group(1)) if m else seq_of(line)


def forward(fd: int, offset: int, end: int, limit: int = MAX_LINE_BYTES) -> Iterator[bytes]:
    """Raw lines (with their newline; a torn last one without) from byte `offset` up to `end`.

    Bounded: a line longer than `limit` is yielded as its first `limit + 1` bytes (no newline,
    so readers report it as too long) and the rest of it is skipped; memory stays one read
    plus one line of `limit` bytes, whatever the file holds (tfaudit.trail.jsonline.bounded_lines).
    """
    pos = offset

    class _Reader:
        @staticmethod
        def read(n: int) -> bytes:
            nonlocal pos
            chunk = os.pread(fd, min(n, _READ, end - pos), pos) if pos < end else b""
            pos += len(chunk)
            return chunk

    yield from bounded_lines(_Reader(), limit)  # type: ignore[arg-type]


def forward_spans(fd: int, offset: int, end: int, limit: int = MAX_LINE_BYTES) -> Iterator[tuple[int, bytes]]:
    """(byte offset, raw line) from `offset` up to `end`: `forward`'s lines, each with where it starts
    (a line over `limit` is yielded cut, as `forward` does, and the offsets after it stay true)."""
    pos, start, size, skipping = offset, offset, 0, False
    pending: list[bytes] = []
    while pos < end and (block := os.pread(fd, min(_READ, end - pos), pos)):
        i = 0
        while (nl := block.find(b"\n", i)) >= 0:
            piece = block[i:nl + 1]
            if not skipping:
                if pending:
                    pending.append(piece)
                    piece, pending, size = b"".join(pending), [], 0
                yield start, piece if len(piece) <= limit + 1 else piece[:limit + 1]
            skipping, start, i = False, pos + nl + 1, nl + 1
        if i < len(block) and not skipping:
            pending.append(block[i:])
            size += len(block) - i
            if size > limit:
                yield start, b"".join(pending)[:limit + 1]
                pending, size, skipping = [], 0, True
        pos += len(block)
    if pending:
        yield start, b"".join(pending)


def backward(fd: int, end: int) -> Iterator[bytes]:
    """Raw lines from `end` back to the start of the file, newest first, each as `forward` gives it."""
    if end <= 0:
        return
    torn = os.pread(fd, 1, end - 1) != b"\n"
    pos = end if torn else end - 1
    suffix = b"" if torn else b"\n"
    buf = b""
    while pos > 0:
        step = min(CHUNK, pos)
        pos -= step
        buf = os.pread(fd, step, pos) + buf
        parts = buf.split(b"\n")
        buf = parts[0]
        for part in reversed(parts[1:]):
            yield part + suffix
            suffix = b"\n"
    yield buf + suffix


def next_line_start(fd: int, pos: int, end: int) -> int:
    """The offset of the first line that starts at or after `pos` (`end` when none does)."""
    if pos == 0:
        return 0
    while pos < end:
        chunk = os.pread(fd, min(PROBE, end - pos + 1), pos - 1)
        idx = chunk.find(b"\n")
        if idx >= 0:
            return pos + idx
        pos += len(chunk) - 1
        if len(chunk) <= 1:
            break
    return end


def _line_at(fd: int, start: int, end: int) -> bytes:
    out = b""
    pos = start
    while pos < end:
        chunk = os.pread(fd, min(PROBE, end - pos), pos)
        if not chunk:
            break
        idx = chunk.find(b"\n")
        if idx >= 0:
            return out + chunk[:idx]
        out += chunk
        pos += len(chunk)
    return out


def seek_seq(fd: int, end: int, target: int) -> int | None:
    """The byte offset of the line whose chain.seq is `target` (`end` when every line is older), found
    by bisecting on the seqs; None when the lines probed are not an increasing run of records (a
    damaged ledger), so the caller counts lines from the start instead."""
    lo, hi = 0, end  # the answer lies in [lo, hi]; lines starting before lo have seq < target
    while hi - lo > 2 * PROBE:
        mid = next_line_start(fd, (lo + hi) // 2, hi)
        if mid >= hi:
            hi = (lo + hi) // 2
            continue
        line = _line_at(fd, mid, end)
        seq = _guide_seq(line)
        if seq is None:
            return None
        if seq >= target:
            hi = mid
        else:
            lo = mid + len(line) + 1
    pos = lo
    prev: int | None = None
    while pos < end:
        line = _line_at(fd, pos, end)
        if pos + len(line) >= end and not _ends_nl(fd, pos + len(line), end):
            return None if prev is None or prev + 1 != target else pos  # a torn last line
        seq = _guide_seq(line)
        if seq is None or (prev is not None and seq != prev + 1):
            return None
        if seq == target:
            return pos if seq_of(line) == target else None
        if seq > target:
            return None
        prev = seq
        pos += len(line) + 1
    return end


def _ends_nl(fd: int, at: int, end: int) -> bool:
    return at < end and os.pread(fd, 1, at) == b"\n"
