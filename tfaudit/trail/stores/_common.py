"""What the shared stores have in common: bounded retries with jitter, tail checks, URL options."""

from __future__ import annotations

import random
import time
from dataclasses import dataclass, field
from urllib.parse import parse_qsl

from tfaudit.errors import LedgerError, UsageError
from tfaudit.trail.signing import line_digest
from tfaudit.trail.store import Tail
from tfaudit.trail.jsonline import parse_line

MAX_ATTEMPTS = 50  # a writer that keeps losing races gives up after this many tries (seconds, not hours)


@dataclass
class AppendStats:
    """Per store instance: how many appends, and how many retries after a lost race (for the benchmark)."""

    appends: int = 0
    retries: int = 0
    latencies: list[float] = field(default_factory=list)


def backoff(attempt: int, base: float = 0.01, cap: float = 0.5) -> None:
    """Full jitter (AWS architecture blog): sleep a random time up to base * 2**attempt, capped."""
    time.sleep(random.uniform(0, min(cap, base * (2 ** min(attempt, 10)))))


def lost_too_often(store: str, attempts: int) -> LedgerError:
    return LedgerError(f"gave up appending to {store} after {attempts} lost races with other writers",
                       hint="the store is very busy; retry the command (nothing before this batch was changed)")


def tail_of_line(store: str, position: int, line: bytes) -> Tail:
    """The tail a stored last line stands for; a line that is not a record at `position` is damage."""
    try:
        seq = int(parse_line(line)["chain"]["seq"])  # strict: BadLine is a ValueError
    except (ValueError, KeyError, TypeError) as e:
        raise LedgerError(f"the last record of {store} is not a tfaudit record",
                          hint=f"run 'tfaudit verify {store}'; tfaudit will not append after a damaged tail") from e
    if seq != position:
        raise LedgerError(f"the last record of {store} says chain.seq {seq} at position {position}",
                          hint=f"run 'tfaudit verify {store}'; tfaudit will not append after a damaged tail")
    return Tail(seq, line_digest(line))


def query_options(query: str, allowed: set[str], url: str) -> dict[str, str]:
    opts = dict(parse_qsl(query, keep_blank_values=True))
    unknown = sorted(set(opts) - allowed)
    if unknown:
        raise UsageError(f"unknown option {unknown[0]!r} in the ledger URL {url}",
                         hint="known: " + ", ".join(sorted(allowed)))
    return opts

