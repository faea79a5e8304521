"""Reading files whose size tfaudit does not control, in memory bounded by a limit.

Keys and the config are small regular files: anything else (a FIFO that never ends, a
device such as /dev/zero, a directory, a file far over the limit) is refused at once with
one line naming the file and the limit, never read forever. Streams that must be read
whole (stdin, a pipe) stop at the limit.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import BinaryIO

from tfaudit.errors import TfauditError

MAX_KEY_BYTES = 64 * 1024  # a PEM key is a few hundred bytes
MAX_CONFIG_BYTES = 128 * 1024  # .tfaudit.hcl: a real one is a few kilobytes; python-hcl2 takes about 1 s per 100 KiB
MAX_WHOLE_DOCUMENT_BYTES = 256 * 1024 * 1024  # a plan read whole (stdin, pipes, non-UTF-8 files)


def _size(n: int) -> str:
    return f"{n // 2**20} MiB" if n >= 2**20 else f"{n // 1024} KiB"


def read_regular(path: Path, *, limit: int, what: str, error: type[TfauditError], hint: str | None = None) -> bytes:
    """The bytes of the regular file `path`, refusing (with `error`) anything else or anything over `limit`.

    Opened without blocking and checked on the open descriptor, so a FIFO named as a key is
    refused at once instead of waiting for a writer, and nothing can be swapped in between.
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except FileNotFoundError:
        raise error(f"{what} {path} does not exist", hint=hint) from None
    except IsADirectoryError:
        raise error(f"{what} {path} is a directory, not a file", hint=hint) from None
    except OSError as e:
        raise error(f"{what} {path}: cannot read ({e.strerror})", hint=hint) from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            kind = "a FIFO" if stat.S_ISFIFO(st.st_mode) else "a directory" if stat.S_ISDIR(st.st_mode) \
                else "a device" if stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode) else "not a regular file"
            raise error(f"{what} {path} is {kind}, not a regular file", hint=hint or "give the path of a regular file")
        if st.st_size > limit:
            raise error(f"{what} {path} is {_size(st.st_size)}, over the {_size(limit)} limit", hint=hint)
        with os.fdopen(os.dup(fd), "rb") as f:
            data = f.read(limit + 1)
    except OSError as e:
        raise error(f"{what} {path}: cannot read ({e.strerror})", hint=hint) from None
    finally:
        os.close(fd)
    if len(data) > limit:  # it grew while being read
        raise error(f"{what} {path} is over the {_size(limit)} limit", hint=hint)
    return data


def read_capped(f: BinaryIO, *, limit: int, what: str, error: type[TfauditError], hint: str | None = None) -> bytes:
    """A stream read whole, refusing it once it passes `limit` (memory never holds more)."""
    data = f.read(limit + 1)
    if len(data) > limit:
        raise error(f"{what} is over the {_size(limit)} that tfaudit reads whole", hint=hint)
    return data
