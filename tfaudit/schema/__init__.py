"""The record JSON Schema, shipped in the package and compiled once.

Two validators read the same schema: fastjsonschema (the schema compiled to Python code,
about 20x faster) answers "valid?" when records are written; jsonschema, the reference
implementation, is the authority whenever a record is not clearly valid and gives the error
messages. verify, which checks every line of a ledger, asks jsonschema-rs (compiled Rust,
about 6x faster again) first (`line_schema_errors`). tests/test_schema.py checks that neither
fast path accepts what the reference rejects (where jsonschema-rs differs, it is the stricter:
`\\d` is ASCII digits only, `$` does not match before a final newline; such a record goes on
to the other two, which decide).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from enum import StrEnum
from functools import cache
from importlib import resources
from typing import Any

from tfaudit.errors import SchemaError

SCHEMA_ID = "tfaudit.record/v1"


class RecordType(StrEnum):
    """Every record type the schema allows (its `type` enum; tests/test_schema.py keeps them equal)."""

    RUN_STARTED = "run.started"
    RESOURCE_CHANGED = "resource.changed"
    RUN_FINISHED = "run.finished"
    PLAN_RECORDED = "plan.recorded"
    DRIFT_DETECTED = "drift.detected"
    STATE_CHANGED = "state.changed"
    STATE_OUT_OF_BAND = "state.out_of_band"
    LEDGER_REPAIRED = "ledger.repaired"


@cache
def _schema_text() -> str:
    return resources.files(__package__).joinpath("record.schema.json").read_text("utf-8")


@cache
def record_schema() -> dict[str, Any]:
    schema: dict[str, Any] = json.loads(_schema_text())
    return schema


@cache
def _validator() -> Any:
    from jsonschema import Draft202012Validator

    schema = record_schema()
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema, format_checker=Draft202012Validator.FORMAT_CHECKER)


@cache
def _fast_validator() -> Callable[[Any], Any]:
    from tfaudit.schema.compiled import fast_validator

    return fast_validator(record_schema(), _schema_text())


@cache
def _rs_validator() -> Callable[[Any], bool]:
    """`is_valid` of the schema compiled by jsonschema-rs (formats not checked, as fastjsonschema's; offline)."""
    import jsonschema_rs

    is_valid: Callable[[Any], bool] = jsonschema_rs.Draft202012Validator(
        record_schema(), validate_formats=False, offline=True).is_valid
    return is_valid


def prepare_line_check() -> None:
    """Compile verify's validator now (before forking workers that then share it)."""
    _rs_validator()


def line_schema_errors(record: Mapping[str, Any]) -> list[str]:
    """schema_errors, for verify: jsonschema-rs answers "valid" for a clearly valid record (about 6 us
    for a record here, against 35 us for fastjsonschema); any other goes to schema_errors."""
    try:
        if _rs_validator()(record):
            return []
    except (ValueError, TypeError, RecursionError):
        pass  # a value it cannot take: the others decide
    return schema_errors(record)


def schema_errors(record: Mapping[str, Any]) -> list[str]:
    """Every schema violation in record, as '<json path>: <message>' strings (empty when valid)."""
    from fastjsonschema import JsonSchemaException

    try:
        _fast_validator()(record)
        return []
    except JsonSchemaException:
        pass  # not clearly valid: ask the reference implementation, which also explains why
    errors = sorted(_validator().iter_errors(record), key=lambda e: list(e.absolute_path))
    return [f"{e.json_path}: {e.message[:200]}" for e in errors]


def validate_record(record: Mapping[str, Any]) -> None:
    errs = schema_errors(record)
    if errs:
        raise SchemaError(f"record {record.get('type')!s} fails the record schema: {errs[0]}",
                          hint="this is a tfaudit bug; please report it")
