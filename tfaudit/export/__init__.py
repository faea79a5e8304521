"""Record formats for export and for the wire: each maps one ledger record to a JSON document.

WIRE_FORMATS is an explicit registry ("module:function"), imported only when used. Sinks take
a `format` setting from it; `tfaudit export --format` uses the same functions.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import Any

from tfaudit.errors import UsageError

RecordFormatter = Callable[[Mapping[str, Any]], Mapping[str, Any]]

WIRE_FORMATS: dict[str, str] = {
    "native": "tfaudit.export:native",
    "ocsf": "tfaudit.export.ocsf:to_ocsf",
    "cloudevents": "tfaudit.export.cloudevents:to_cloudevent",
}


def native(record: Mapping[str, Any]) -> Mapping[str, Any]:
    """The ledger record itself, signature and chain included, so the receiver can verify it."""
    return record


def formatter(name: str) -> RecordFormatter:
    if name not in WIRE_FORMATS:
        raise UsageError(f"unknown record format {name!r}", hint="choose one of: " + ", ".join(sorted(WIRE_FORMATS)))
    mod, _, fn = WIRE_FORMATS[name].partition(":")
    f: RecordFormatter = getattr(importlib.import_module(mod), fn)
    return f
