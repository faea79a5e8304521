"""file: append records to a JSONL file besides the ledger (a mounted volume, a shipper's inbox).

The ledger itself is always written; this sink keeps another copy. With the native format
and no filter the copy is line-for-line the ledger from the sink's enrollment on, so it
verifies with `tfaudit verify` when enrolled from the start. Appends are locked and
fsynced like the ledger's.
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar

from tfaudit.errors import SinkError
from tfaudit.redact import Redactor
from tfaudit.sinks.base import Batch, DeliveryConfig, Item, Severity, SinkSpec, encode
from tfaudit.sinks._settings import Err, opt_bool, req_str


class FileSink:
    kind: ClassVar[str] = "file"
    keys: ClassVar[frozenset[str]] = frozenset({"path", "fsync"})
    takes_format: ClassVar[bool] = True
    network: ClassVar[bool] = False
    default_types: ClassVar[frozenset[str] | None] = None
    default_min_severity: ClassVar[Severity] = Severity.INFO

    def __init__(self, spec: SinkSpec) -> None:
        self.spec = spec
        self.path = Path(spec.settings["path"])
        self.fsync = bool(spec.settings.get("fsync", True))

    @classmethod
    def parse_settings(cls, err: Err, body: Mapping[str, Any], ctx: Any) -> dict[str, Any]:
        path = req_str(err, body, "path")
        return {"path": str(ctx.resolve(path)), "fsync": opt_bool(err, body, "fsync", True)}

    @classmethod
    def create(cls, spec: SinkSpec, env: Mapping[str, str], *, redactor: Redactor,
               delivery: DeliveryConfig) -> FileSink:
        return cls(spec)

    def send(self, batch: Batch) -> None:
        data = b"".join(encode(it, self.spec.format) + b"\n" for it in batch.items)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o644)
        except OSError as e:
            raise SinkError(f"cannot open {self.path}: {e.strerror}", hint="fix the path or its permissions") from e
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            size = os.fstat(fd).st_size
            if size and os.pread(fd, 1, size - 1) != b"\n":
                data = b"\n" + data  # a crash tore the last append: start on a fresh line
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
            if self.fsync:
                os.fsync(fd)
        except OSError as e:
            raise SinkError(f"cannot write {self.path}: {e.strerror}") from e
        finally:
            os.close(fd)
        batch.ok(batch.items)

    def confirm(self, items: Sequence[Item]) -> set[str]:
        wanted = {it.id for it in items}
        found: set[str] = set()
        try:
            with self.path.open("rb") as f:
                for line in f:
                    for rid in wanted - found:
                        if rid.encode() in line:
                            found.add(rid)
        except FileNotFoundError:
            return set()
        except OSError as e:
            raise SinkError(f"cannot read {self.path}: {e.strerror}") from e
        return found
