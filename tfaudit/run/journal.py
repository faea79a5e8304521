"""The journal of an apply in flight: terraform's `-json` stream in a file beside the ledger.

terraform writes its stream straight into `<ledger dir>/.tfaudit-journal/<run id>.jsonl`
(tfaudit follows the file), and `<run id>.meta.json` holds what is needed to finish the
run without the tfaudit process that started it: the run and actor as recorded in
`run.started`, the state before, and how to reach terraform; `<run id>.changes.jsonl` the
planned changes (already redacted), one per line, written once as they are built (a
100,000-change plan's bodies are never all in memory, nor rewritten with the meta). The tfaudit process running the apply holds a lock on `<run id>.lock`; a meta
file whose lock nobody holds belongs to a run whose tfaudit died (see tfaudit.run.recover). Both
files are removed once the run's `run.finished` is in the ledger. The journal is
terraform's own output, as it would print it: it is readable by the user only (0600) and
lives only while the run is unfinished.
"""

from __future__ import annotations

import fcntl
import json
import os
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

JOURNAL_DIR = ".tfaudit-journal"


def journal_dir(local_dir: Path) -> Path:
    """The journals of a ledger whose local companions live in local_dir."""
    return local_dir / JOURNAL_DIR


@dataclass(frozen=True)
class Journal:
    """The journal files of one run."""

    directory: Path
    run_id: str

    @property
    def stream(self) -> Path:
        return self.directory / f"{self.run_id}.jsonl"

    @property
    def meta_path(self) -> Path:
        return self.directory / f"{self.run_id}.meta.json"

    @property
    def lock_path(self) -> Path:
        return self.directory / f"{self.run_id}.lock"

    @property
    def changes_path(self) -> Path:
        return self.directory / f"{self.run_id}.changes.jsonl"

    def write_changes(self, bodies: Iterable[Mapping[str, Any]]) -> None:
        """Write the planned resource bodies, one JSON line each, durably (before the meta names them)."""
        self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = os.open(self.changes_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            for body in bodies:
                f.write(json.dumps(body))
                f.write("\n")
            f.flush()
            os.fsync(f.fileno())

    def changes(self) -> Iterator[dict[str, Any]]:
        """The planned resource bodies written by write_changes (none when the file is missing)."""
        try:
            f = self.changes_path.open(encoding="utf-8")
        except FileNotFoundError:
            return
        with f:
            for line in f:
                if line.strip():
                    yield json.loads(line)

    def write_meta(self, meta: Mapping[str, Any]) -> None:
        """Write (or rewrite) the meta file atomically and durably."""
        self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        tmp = self.meta_path.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(json.dumps(meta))  # json.dumps encodes in C; json.dump(meta, f) in Python, ~10x slower
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.meta_path)
        _fsync_dir(self.directory)

    def read_meta(self) -> dict[str, Any] | None:
        try:
            data = json.loads(self.meta_path.read_text())
        except (OSError, ValueError):
            return None
        return data if isinstance(data, dict) else None

    def lines(self) -> Iterator[bytes]:
        try:
            f = self.stream.open("rb")
        except FileNotFoundError:
            return
        with f:
            yield from f

    def remove(self) -> None:
        for p in (self.stream, self.changes_path, self.meta_path, self.lock_path):
            try:
                p.unlink()
            except FileNotFoundError:
                pass


class RunLock:
    """An exclusive lock on a run's lock file (never replaced, unlike the meta file): held by the
    tfaudit process running it from before its meta file exists, taken by whoever recovers it.
    The kernel drops it when its process dies, however it dies."""

    def __init__(self, journal: Journal) -> None:
        self.journal = journal
        self._fd: int | None = None

    def acquire(self, *, wait: bool) -> bool:
        try:
            self.journal.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
            fd = os.open(self.journal.lock_path, os.O_RDWR | os.O_CREAT, 0o600)
        except OSError:
            return False
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
        except BlockingIOError:
            os.close(fd)
            return False
        self._fd = fd
        return True

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


def pending(directory: Path) -> list[Journal]:
    """Journals of runs not yet known to be finished, oldest first."""
    try:
        metas = sorted(directory.glob("*.meta.json"), key=lambda p: p.stat().st_mtime)
    except OSError:
        return []
    return [Journal(directory, p.name[: -len(".meta.json")]) for p in metas]


def _fsync_dir(path: Path) -> None:
    try:
        dfd = os.open(path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        return
    try:
        os.fsync(dfd)
    except OSError:
        pass
    finally:
        os.close(dfd)
