"""A plan whose resource changes stay on disk as JSON text, decoded one at a time.

Decoded whole, a plan costs about five times its JSON size in Python objects, and
`tfaudit apply` needs its resource changes at two moments far apart: before terraform
runs (gates, the `run.started` record, the journal) and after (one `resource.changed`
record per change, against the state after). `read_plan_spooled` walks the plan with the
streaming reader (tfaudit.parse.plan_stream), validates every change as `parse_plan`
does, shows each to a callback, and keeps only its JSON text, exactly as terraform wrote
it, in an unnamed temporary file (mode 0600, never linked into a directory on Linux, gone
when closed or when the process dies); the plan's `resource_changes` is then a
`ChangeSpool`, a sequence that decodes change i when asked. Only the offsets stay in memory,
and, while the changes' text stays under KEEP_DECODED, the changes as first decoded too: an
everyday plan is decoded once, as before, and only a big one is decoded again at each use.

A plan the streaming reader does not take (UTF-16, the setup-terraform wrapper, anything
doubtful) is parsed whole by `parse_plan`, with its usual messages: the two paths give
the same plan.
"""

from __future__ import annotations

import json
import os
import tempfile
from abc import abstractmethod
from array import array
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import BinaryIO, overload

from tfaudit.parse.plan import Plan, ResourceChange, parse_plan, resource_change_from_json
from tfaudit.parse.plan_stream import NotStreamable, stream_plan

_READ_AHEAD = 1 << 20
# Changes whose JSON text totals less than this stay decoded as well (at most about five times
# this in memory): an everyday plan is then never decoded twice, and only big ones are re-read.
KEEP_DECODED = 4 << 20


class ChangeSequence(Sequence[ResourceChange]):
    """A sequence of resource changes that gets change i from `_at(i)` (i already in range), so a
    subclass decodes only what is asked for; slices are lists of the changes they name."""

    @abstractmethod
    def _at(self, i: int) -> ResourceChange: ...

    @overload
    def __getitem__(self, i: int) -> ResourceChange: ...

    @overload
    def __getitem__(self, i: slice) -> Sequence[ResourceChange]: ...

    def __getitem__(self, i: int | slice) -> ResourceChange | Sequence[ResourceChange]:
        if isinstance(i, slice):
            return [self._at(j) for j in range(*i.indices(len(self)))]
        if i < 0:
            i += len(self)
        if not 0 <= i < len(self):
            raise IndexError("change index out of range")
        return self._at(i)


class ChangeSpool(ChangeSequence):
    """Resource changes as JSON text in a private temporary file; change i is decoded on access
    (or, while their text stays under `keep_decoded` bytes, kept decoded from the first reading)."""

    def __init__(self, directory: Path | None, source: str, keep_decoded: int = KEEP_DECODED) -> None:
        # TemporaryFile: created 0600 and unlinked at once (O_TMPFILE where the kernel has it).
        self._file = tempfile.TemporaryFile(dir=directory, prefix=".tfaudit-plan-")
        self._ends = array("Q", [0])
        self._source = source
        self._keep = keep_decoded
        self._decoded: list[ResourceChange] | None = []

    def add(self, text: str) -> None:
        """The next change's JSON text."""
        data = text.encode("utf-8")
        self._file.write(data)
        self._ends.append(self._ends[-1] + len(data))

    def keep(self, ch: ResourceChange) -> None:
        """The change whose text was added last, decoded: kept while the spool is small."""
        if self._decoded is None:
            return
        if self._ends[-1] > self._keep:
            self._decoded = None
        else:
            self._decoded.append(ch)

    def seal(self) -> ChangeSpool:
        """Done adding: everything written is readable (by offset, so readers never share a position)."""
        self._file.flush()
        return self

    def close(self) -> None:
        self._file.close()

    def _decode(self, i: int, data: bytes) -> ResourceChange:
        return resource_change_from_json(json.loads(data), f"resource_changes[{i}]", self._source)

    def __len__(self) -> int:
        return len(self._ends) - 1

    def _at(self, i: int) -> ResourceChange:
        if self._decoded is not None:
            return self._decoded[i]
        start, end = self._ends[i], self._ends[i + 1]
        return self._decode(i, os.pread(self._file.fileno(), end - start, start))

    def __iter__(self) -> Iterator[ResourceChange]:
        """Every change in order, reading the file a window at a time."""
        if self._decoded is not None:
            yield from self._decoded
            return
        fd, ends = self._file.fileno(), self._ends
        window, base = b"", 0
        for i in range(len(self)):
            start, end = ends[i], ends[i + 1]
            if end > base + len(window):
                window, base = os.pread(fd, max(end - start, _READ_AHEAD), start), start
            yield self._decode(i, window[start - base:end - base])


def read_plan_spooled(f: BinaryIO, source: str, *, whole: Callable[[], bytes], directory: Path | None = None,
                      on_change: Callable[[ResourceChange], None] | None = None,
                      keep_decoded: int = KEEP_DECODED) -> Plan:
    """The one plan in `f`, its resource changes in a ChangeSpool (in `directory`); each change is
    shown to on_change once, in order. `whole()` gives the file's bytes when it must be parsed whole
    (then `resource_changes` is a tuple). Errors are parse_plan's."""
    spool = ChangeSpool(directory, source, keep_decoded)
    seen = on_change or _ignore

    def each(ch: ResourceChange) -> None:
        spool.keep(ch)
        seen(ch)

    drift: list[ResourceChange] = []
    try:
        shell = stream_plan(f, source, each, drift.append, spool.add)
    except NotStreamable:
        spool.close()
        plan = parse_plan(whole(), source=source)
        for ch in plan.resource_changes:
            seen(ch)
        return plan
    except BaseException:
        spool.close()
        raise
    return _with_changes(shell, spool.seal(), tuple(drift))


def _ignore(ch: ResourceChange) -> None:
    pass


def _with_changes(shell: Plan, changes: Sequence[ResourceChange], drift: tuple[ResourceChange, ...]) -> Plan:
    # stream_plan's shell has neither resource changes nor drift; drift is kept decoded (usually
    # small, and summarised whole in run.started); everything else is as parse_plan gives it.
    fields = dict(shell.__dict__)
    fields["resource_changes"] = changes
    fields["resource_drift"] = drift
    return Plan(**fields)


__all__ = ["ChangeSequence", "ChangeSpool", "read_plan_spooled"]
