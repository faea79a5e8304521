"""A progress bar for long reads: on a terminal only, never on a pipe or in a log file."""

from __future__ import annotations

import sys
import time
from types import TracebackType
from collections.abc import Iterator
from typing import Any, TextIO

# Reads smaller than this finish before a bar would be worth seeing.
MIN_BYTES = 256 * 1024
_REDRAW_SECONDS = 0.1
_WIDTH = 30


class TerminalProgress:
    """Implements query.Progress; draws on stream only when it is a terminal."""

    def __init__(self, label: str, stream: TextIO | None = None, enabled: bool = True) -> None:
        self.stream = stream or sys.stderr
        self.label = label
        self.enabled = enabled and _isatty(self.stream)
        self.total = 0
        self.done = 0
        self._last = 0.0
        self._drawn = False

    def add_total(self, nbytes: int) -> None:
        self.total += max(0, nbytes)

    def advance(self, nbytes: int) -> None:
        self.done += nbytes
        if not self.enabled or self.total < MIN_BYTES:
            return
        now = time.monotonic()
        if now - self._last >= _REDRAW_SECONDS or self.done >= self.total:
            self._last = now
            self._draw()

    def _draw(self) -> None:
        frac = min(1.0, self.done / self.total) if self.total else 1.0
        filled = int(frac * _WIDTH)
        self.stream.write(f"\r{self.label} [{'#' * filled}{'.' * (_WIDTH - filled)}] "
                          f"{frac * 100:5.1f}% {self.done / 1e6:.1f}/{self.total / 1e6:.1f} MB")
        self.stream.flush()
        self._drawn = True

    def close(self) -> None:
        if self._drawn:
            self.stream.write("\r\033[K")
            self.stream.flush()

    def __enter__(self) -> TerminalProgress:
        return self

    def __exit__(self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None) -> None:
        self.close()


def _isatty(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


class _Tracked:
    """Delegates to a ledger store or view; its line reads advance a progress bar by bytes read."""

    def __init__(self, inner: Any, progress: Any) -> None:
        self._inner = inner
        self._progress = progress

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    def lines(self, start: int = 1) -> Iterator[tuple[int, bytes]]:
        for n, raw in self._inner.lines(start):
            self._progress.advance(len(raw))
            yield n, raw

    def records(self) -> Iterator[dict[str, Any]]:
        """Parsed records, as the store gives them (lines that are not JSON are verify's business)."""
        from tfaudit.trail.jsonline import BadLine, parse_line

        for _, raw in self.lines():
            try:
                yield parse_line(raw)  # the strict reader: no line can crash a reader
            except BadLine:
                continue

    def snapshot(self) -> _Tracked:
        return _Tracked(self._inner.snapshot(), self._progress)


def tracked(store: Any, progress: Any) -> Any:
    """store (a LedgerStore) whose reads move progress; the total is the ledger file's size, when it is one."""
    path = getattr(store, "local_path", None)
    if path is not None:
        try:
            progress.add_total(path.stat().st_size)
        except OSError:
            pass  # the read itself reports a missing ledger
    return _Tracked(store, progress)
