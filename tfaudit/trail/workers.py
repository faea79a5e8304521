"""Judging a ledger's lines on every core, for tfaudit.trail.verify.

A ledger file is split at line starts into a few byte ranges per worker process
(`FileView.split`); each worker opens the file itself, reads its range and judges its lines
(tfaudit.trail.judge); only the small verdicts travel back, never the lines. The caller folds
them range by range, in file order, adding each range's first line number, so every line
number and the report are exactly what one process reading from the start gives. Lines of
the shared stores (S3, PostgreSQL) arrive as an iterator and are judged in chunks, in this
process or, when asked for, in workers fed over pipes.
"""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

from tfaudit.trail.jsonline import MAX_LINE_BYTES
from tfaudit.trail.judge import ChainRange, Verdict, judge_chain, judge_chain_range, judge_line
from tfaudit.trail.ledger import FileView
from tfaudit.trail.signing import Verifier
from tfaudit.trail.store import LedgerView

CHUNK_LINES = 512  # lines per task when lines are sent to a worker
MIN_PARALLEL_BYTES = 2 * 2**20  # below this a pool costs more than it saves
RANGES_PER_JOB = 4  # more ranges than workers: a worker slowed by other load holds up less
MAX_RANGE_BYTES = 8 * 2**20  # the verdicts of a range in flight stay small, whatever the ledger's size


class Progress(Protocol):
    def add_total(self, nbytes: int) -> None: ...

    def advance(self, nbytes: int) -> None: ...


Batch = tuple[int, Sequence[Verdict]]  # (the line number before the batch's first, its verdicts numbered from 1 on)


def default_jobs(path: Path | None) -> int:
    """One worker per core this process may use, for a ledger file big enough to be worth it."""
    if path is None:
        return 1  # a shared store: lines arrive over the network, one process keeps up
    try:
        size = path.stat().st_size
    except OSError:
        return 1
    if size < MIN_PARALLEL_BYTES:
        return 1
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        cores = os.cpu_count() or 1
    return max(1, cores)


def ranges_of(view: LedgerView, jobs: int) -> list[tuple[int, int]] | None:
    """The byte ranges workers read, or None when the view is not a file read in parallel."""
    if jobs <= 1 or not isinstance(view, FileView):
        return None
    return view.split(max(jobs * RANGES_PER_JOB, -(-view.size // MAX_RANGE_BYTES)))


def verdict_batches(view: LedgerView, by_id: Mapping[str, Verifier] | None, chain_only: bool, jobs: int,
                    progress: Progress | None = None) -> Iterator[Batch]:
    """Every line's verdict, in line order, in batches."""
    ranges = ranges_of(view, jobs)
    if ranges is None:
        yield from _line_batches(view, by_id, chain_only, jobs, progress)
        return
    base = 0
    for (start, end), verdicts in zip(ranges, _pooled(jobs, (view, by_id, chain_only), _judge_range, ranges)):
        yield base, verdicts
        base += len(verdicts)
        if progress is not None:
            progress.advance(end - start)


def chain_ranges(view: LedgerView, jobs: int, progress: Progress | None = None) -> Iterator[ChainRange] | None:
    """`--chain-only` summaries of each byte range, in order; None when the view is not read in parallel."""
    ranges = ranges_of(view, jobs)
    if ranges is None:
        return None
    return _advancing(ranges, _pooled(jobs, (view, None, True), _chain_range, ranges), progress)


def _advancing(ranges: list[tuple[int, int]], results: Iterator[ChainRange],
               progress: Progress | None) -> Iterator[ChainRange]:
    for (start, end), result in zip(ranges, results):
        yield result
        if progress is not None:
            progress.advance(end - start)


# --- in the workers ---------------------------------------------------------------------------
_view: Any = None
_keys: Mapping[str, Verifier] | None = None
_chain_only = False


def _init_worker(view: Any, by_id: Mapping[str, Verifier] | None, chain_only: bool) -> None:
    global _view, _keys, _chain_only
    _view, _keys, _chain_only = view, by_id, chain_only


def _judge_range(start: int, end: int) -> list[Verdict]:
    raws = _view.range_lines(start, end)
    if _chain_only:
        return [judge_chain(n, raw) for n, raw in enumerate(raws, 1)]
    return [judge_line(n, raw, _keys) for n, raw in enumerate(raws, 1)]


def _chain_range(start: int, end: int) -> ChainRange:
    return judge_chain_range(_view.range_lines(start, end))


def _judge_chunk(chunk: list[tuple[int, bytes]], by_id: Mapping[str, Verifier] | None = None,
                 chain_only: bool | None = None) -> list[Verdict]:
    keys = _keys if chain_only is None else by_id
    only = _chain_only if chain_only is None else chain_only
    if only:
        return [judge_chain(n, raw) for n, raw in chunk]
    return [judge_line(n, raw, keys) for n, raw in chunk]


# --- in this process ----------------------------------------------------------------------------
def _pooled(jobs: int, init: tuple[Any, ...], work: Callable[..., Any], tasks: Iterable[tuple[Any, ...]]) -> Iterator[Any]:
    """work(*task) for each task in `jobs` worker processes; results in task order."""
    import multiprocessing

    # fork: the workers inherit the public keys (key objects do not pickle) and the loaded modules
    ctx = multiprocessing.get_context("fork")
    with ctx.Pool(jobs, initializer=_init_worker, initargs=init) as pool:
        yield from _in_order(pool.apply_async, work, tasks, window=4 * jobs)


def _in_order(submit: Callable[..., Any], work: Callable[..., Any], tasks: Iterable[tuple[Any, ...]],
              window: int) -> Iterator[Any]:
    """Results of every task in order, with at most `window` tasks in flight (memory stays bounded)."""
    pending: deque[Any] = deque()
    for task in tasks:
        pending.append(submit(work, task))
        if len(pending) >= window:
            yield pending.popleft().get()
    while pending:
        yield pending.popleft().get()


def _chunks(lines: Iterable[tuple[int, bytes]], size: int) -> Iterator[list[tuple[int, bytes]]]:
    chunk: list[tuple[int, bytes]] = []
    budget = 0
    for item in lines:
        chunk.append(item)
        budget += len(item[1])
        if len(chunk) >= size or budget >= MAX_LINE_BYTES:
            yield chunk
            chunk, budget = [], 0
    if chunk:
        yield chunk


def _line_batches(view: LedgerView, by_id: Mapping[str, Verifier] | None, chain_only: bool, jobs: int,
                  progress: Progress | None) -> Iterator[Batch]:
    lines = view.lines()
    if progress is not None:
        lines = _advance_by_line(lines, progress)
    chunks = _chunks(lines, CHUNK_LINES)
    if jobs <= 1:
        for chunk in chunks:
            yield 0, _judge_chunk(chunk, by_id, chain_only)
        return
    for verdicts in _pooled(jobs, (None, by_id, chain_only), _judge_chunk, ((c,) for c in chunks)):
        yield 0, verdicts


def _advance_by_line(lines: Iterator[tuple[int, bytes]], progress: Progress) -> Iterator[tuple[int, bytes]]:
    for n, raw in lines:
        progress.advance(len(raw))
        yield n, raw
