"""stdout: one JSON record per line, for CI logs and log shippers."""

from __future__ import annotations

import sys
from collections.abc import Mapping, Sequence
from typing import Any, BinaryIO, ClassVar

from tfaudit.errors import SinkError
from tfaudit.redact import Redactor
from tfaudit.sinks.base import Batch, DeliveryConfig, Item, Severity, SinkSpec, encode
from tfaudit.sinks._settings import Err


class StdoutSink:
    kind: ClassVar[str] = "stdout"
    keys: ClassVar[frozenset[str]] = frozenset()
    takes_format: ClassVar[bool] = True
    network: ClassVar[bool] = False
    default_types: ClassVar[frozenset[str] | None] = None
    default_min_severity: ClassVar[Severity] = Severity.INFO

    def __init__(self, spec: SinkSpec, stream: BinaryIO | None = None) -> None:
        self.spec = spec
        self.stream = stream

    @classmethod
    def parse_settings(cls, err: Err, body: Mapping[str, Any], ctx: Any) -> dict[str, Any]:
        return {}

    @classmethod
    def create(cls, spec: SinkSpec, env: Mapping[str, str], *, redactor: Redactor,
               delivery: DeliveryConfig) -> StdoutSink:
        return cls(spec)

    def send(self, batch: Batch) -> None:
        out = self.stream or sys.stdout.buffer
        try:
            sys.stdout.flush()  # keep order with text already printed
            out.write(b"".join(encode(it, self.spec.format) + b"\n" for it in batch.items))
            out.flush()
        except (OSError, ValueError) as e:
            raise SinkError(f"cannot write to stdout: {e}") from e
        batch.ok(batch.items)

    def confirm(self, items: Sequence[Item]) -> set[str]:
        return set()
