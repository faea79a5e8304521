"""Sinks: where records go after the ledger. A Protocol, an explicit registry, one module per backend.

Config: `sink "<kind>" "<name>" { ... }` blocks (several of each kind allowed) and one
optional `delivery { ... }` block. Every sink takes `types` and `min_severity` filters;
sinks that ship records take `format` (see tfaudit.export.WIRE_FORMATS); network sinks
take `timeout_seconds` (per request). The rest is the backend's own, validated by its
`parse_settings`. Backend modules import their libraries (boto3) only when a sink is
built, so parsing a config never does.
"""

from __future__ import annotations

import importlib
import math
from collections.abc import Mapping
from typing import Any

from tfaudit.config import (
    BlockContext,
    check_keys,
    get_str,
    get_str_list,
    labelled_blocks,
    single_block,
)
from tfaudit.errors import ConfigError
from tfaudit.schema import RecordType
from tfaudit.sinks.base import (
    Batch,
    DeliveryConfig,
    Item,
    OnFailure,
    Severity,
    Sink,
    SinkFilter,
    SinkSpec,
    record_severity,
)

__all__ = ["SINK_KINDS", "Batch", "DeliveryConfig", "Item", "OnFailure", "Severity", "Sink", "SinkFilter",
           "SinkSpec", "backend", "parse_delivery", "parse_sinks", "record_severity"]

# kind -> "module:Class". Explicit on purpose: no plugin discovery.
SINK_KINDS: dict[str, str] = {
    "file": "tfaudit.sinks.file:FileSink",
    "stdout": "tfaudit.sinks.stdout:StdoutSink",
    "s3": "tfaudit.sinks.s3:S3Sink",
    "cloudwatch": "tfaudit.sinks.cloudwatch:CloudWatchSink",
    "webhook": "tfaudit.sinks.webhook:WebhookSink",
    "slack": "tfaudit.sinks.slack:SlackSink",
    "pagerduty": "tfaudit.sinks.pagerduty:PagerDutySink",
}

_COMMON_KEYS = {"types", "min_severity"}
_KNOWN_TYPES = {RecordType.RUN_STARTED, RecordType.RESOURCE_CHANGED, RecordType.RUN_FINISHED, RecordType.PLAN_RECORDED, RecordType.DRIFT_DETECTED,
                RecordType.STATE_CHANGED, RecordType.STATE_OUT_OF_BAND, RecordType.LEDGER_REPAIRED}
MAX_TIMEOUT_SECONDS = 300.0


def backend(kind: str) -> Any:
    """The class implementing a sink kind (imports its module, not its libraries)."""
    mod, _, cls = SINK_KINDS[kind].partition(":")
    return getattr(importlib.import_module(mod), cls)


def get_number(ctx: BlockContext, body: Mapping[str, Any], key: str, default: float, *, label: str,
               minimum: float, maximum: float) -> float:
    v = body.get(key, default)
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
        raise ctx.error(f"{key} must be a number", label=label)
    if not minimum <= v <= maximum:
        raise ctx.error(f"{key} must be between {minimum:g} and {maximum:g}", label=label)
    return float(v)


def parse_sinks(ctx: BlockContext, entries: list[Any]) -> tuple[SinkSpec, ...]:
    specs: list[SinkSpec] = []
    seen: set[str] = set()
    for (kind, name), body in labelled_blocks(ctx, entries, 2):
        label = f"{kind}\" \"{name}"
        if kind not in SINK_KINDS:
            raise ctx.error(f"unknown sink kind {kind!r}", label=label, hint="kinds: " + ", ".join(SINK_KINDS))
        if not name or not all(c.isalnum() or c in "-_" for c in name):
            raise ctx.error("the sink name may use only letters, digits, - and _", label=label)
        if f"{kind}.{name}" in seen:
            raise ctx.error("is declared twice", label=label)
        seen.add(f"{kind}.{name}")
        cls = backend(kind)
        allowed = _COMMON_KEYS | set(cls.keys)
        if cls.takes_format:
            allowed.add("format")
        if cls.network:
            allowed.add("timeout_seconds")
        check_keys(ctx, body, allowed, label=label)

        def err(message: str, hint: str | None = None, _label: str = label) -> ConfigError:
            return ctx.error(message, label=_label, hint=hint)

        specs.append(SinkSpec(
            kind=kind, name=name,
            filter=_parse_filter(ctx, body, label, cls),
            format=_parse_format(ctx, body, label) if cls.takes_format else "native",
            timeout_seconds=get_number(ctx, body, "timeout_seconds", 10.0, label=label, minimum=0.1,
                                       maximum=MAX_TIMEOUT_SECONDS),
            settings=cls.parse_settings(err, body, ctx),
        ))
    return tuple(specs)


def _parse_filter(ctx: BlockContext, body: Mapping[str, Any], label: str, cls: Any) -> SinkFilter:
    if "types" in body:
        types = get_str_list(ctx, body, "types", label=label)
        unknown = sorted(set(types) - _KNOWN_TYPES)
        if unknown:
            raise ctx.error(f"types: unknown record type {unknown[0]!r}", label=label,
                            hint="types: " + ", ".join(sorted(_KNOWN_TYPES)))
        if not types:
            raise ctx.error("types must not be empty (drop it to send every type)", label=label)
        type_set: frozenset[str] | None = frozenset(types)
    else:
        type_set = cls.default_types
    raw = get_str(ctx, body, "min_severity", label=label)
    if raw is None:
        sev = cls.default_min_severity
    else:
        try:
            sev = Severity(raw)
        except ValueError:
            raise ctx.error(f"min_severity must be one of {', '.join(s.value for s in Severity)}, not {raw!r}",
                            label=label) from None
    return SinkFilter(type_set, sev)


def _parse_format(ctx: BlockContext, body: Mapping[str, Any], label: str) -> str:
    from tfaudit.export import WIRE_FORMATS

    fmt = get_str(ctx, body, "format", "native", label=label) or "native"
    if fmt not in WIRE_FORMATS:
        raise ctx.error(f"unknown format {fmt!r}", label=label, hint="formats: " + ", ".join(sorted(WIRE_FORMATS)))
    return fmt


def parse_delivery(ctx: BlockContext, entries: list[Any]) -> DeliveryConfig:
    body = single_block(ctx, entries)
    check_keys(ctx, body, {"on_failure", "max_attempts", "deadline_seconds"})
    raw = get_str(ctx, body, "on_failure", "warn") or "warn"
    try:
        on_failure = OnFailure(raw)
    except ValueError:
        raise ctx.error(f'on_failure must be "warn" or "fail", not {raw!r}') from None
    attempts = body.get("max_attempts", 3)
    if isinstance(attempts, bool) or not isinstance(attempts, int) or not 1 <= attempts <= 10:
        raise ctx.error("max_attempts must be a whole number from 1 to 10")
    deadline = body.get("deadline_seconds", 20)
    if isinstance(deadline, bool) or not isinstance(deadline, (int, float)) or not 1 <= deadline <= 600:
        raise ctx.error("deadline_seconds must be a number from 1 to 600")
    return DeliveryConfig(on_failure, attempts, float(deadline))

