"""The record schema: the fast validator never accepts what the reference validator rejects."""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator

from tfaudit import records
from tfaudit.trail.ledger import Ledger
from tfaudit.schema import _fast_validator, _rs_validator, line_schema_errors, record_schema, schema_errors
from tfaudit.trail.signing import load_signer


@pytest.fixture(scope="module")
def valid_records(tmp_path_factory: pytest.TempPathFactory) -> list[dict[str, Any]]:
    from tfaudit.trail.signing import generate_keypair

    d = tmp_path_factory.mktemp("schema")
    priv, _ = generate_keypair(d / "k")
    run = records.RunInfo(id=records.RunId(records.new_id()), command="apply", args=(), tool="terraform",
                          tool_version="1.11.4", workspace="default", working_dir="/w", plan_sha256="a" * 64)
    actor = {"user": "alice", "git": None, "ci": None}
    recs = [
        records.base_record("run.started", run, actor, plan={"summary": {"create": 1}, "changes": [
            {"address": "a.b", "actions": ["create"], "action_reason": None}]},
            findings=[{"rule": "r", "severity": "high", "address": "a.b", "message": "m"}]),
        records.base_record("resource.changed", run, actor, resource={
            "address": "a.b", "module": None, "type": "a", "name": "b", "index": 0, "provider": "p",
            "actions": ["delete", "create"], "action_reason": "replace_because_cannot_update", "status": "failed",
            "error": {"summary": "s", "detail": "d"}, "changed_paths": ["x"], "before": {"x": 1}, "after": {"x": 2}}),
        records.base_record("run.finished", run, actor, outcome=records.outcome_body(
            status="partial", exit_code=1, counts={"succeeded": 1, "failed": 1}, state_before=None, state_after=None)),
    ]
    return [a.record for a in Ledger(d / "l.jsonl").append(recs, load_signer(priv))]


def _mutations(rec: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    """Every record with one thing wrong: each field removed, set to null, to a wrong type, or to junk."""
    def walk(node: Any, path: list[Any]) -> Iterator[list[Any]]:
        if isinstance(node, dict):
            for k, v in node.items():
                yield [*path, k]
                yield from walk(v, [*path, k])
        elif isinstance(node, list):
            for i, v in enumerate(node):
                yield from walk(v, [*path, i])

    for path in walk(rec, []):
        for label, value in (("removed", ...), ("null", None), ("int", 7), ("str", "junk"), ("list", []),
                             ("obj", {"junk": 1})):
            m = copy.deepcopy(rec)
            parent = m
            for key in path[:-1]:
                parent = parent[key]
            if value is ...:
                if isinstance(parent, dict):
                    del parent[path[-1]]
                else:
                    continue
            else:
                parent[path[-1]] = value
            yield f"{'.'.join(map(str, path))}:{label}", m
    extra = copy.deepcopy(rec)
    extra["unexpected"] = True
    yield "extra-top-level-key", extra


def test_valid_records_pass_both(valid_records: list[dict[str, Any]]) -> None:
    reference = Draft202012Validator(record_schema())
    for rec in valid_records:
        assert reference.is_valid(rec)
        assert schema_errors(rec) == []


def test_fast_path_never_accepts_what_the_reference_rejects(valid_records: list[dict[str, Any]]) -> None:
    from fastjsonschema import JsonSchemaException

    reference = Draft202012Validator(record_schema())
    checked = 0
    for rec in valid_records:
        for label, mutated in _mutations(rec):
            if reference.is_valid(mutated):
                continue
            checked += 1
            with pytest.raises(JsonSchemaException):
                _fast_validator()(json.loads(json.dumps(mutated)))
            assert schema_errors(mutated), label
    assert checked > 300  # the mutations really exercised the schema


def test_verify_fast_path_never_accepts_what_the_reference_rejects(valid_records: list[dict[str, Any]]) -> None:
    """jsonschema-rs, which verify asks first (line_schema_errors), on the same mutations."""
    reference = Draft202012Validator(record_schema())
    checked = 0
    for rec in valid_records:
        assert _rs_validator()(rec) and line_schema_errors(rec) == []
        for label, mutated in _mutations(rec):
            if reference.is_valid(mutated):
                continue
            checked += 1
            assert not _rs_validator()(json.loads(json.dumps(mutated))), label
            assert line_schema_errors(mutated) == schema_errors(mutated), label
    assert checked > 300


def test_where_verify_fast_path_is_stricter_the_others_decide(valid_records: list[dict[str, Any]]) -> None:
    """jsonschema-rs's `$` does not match before a final newline; Python's (the reference's) does:
    jsonschema-rs says "not clearly valid" and the other two give the verdict."""
    rec = copy.deepcopy(valid_records[0])
    rec["run"]["id"] = "a" * 32 + "\n"
    assert not _rs_validator()(rec)
    assert Draft202012Validator(record_schema()).is_valid(rec)
    assert line_schema_errors(rec) == schema_errors(rec) == []


def test_schema_errors_explain_with_a_path(valid_records: list[dict[str, Any]]) -> None:
    bad = copy.deepcopy(valid_records[1])
    bad["resource"]["status"] = "kinda"
    (first, *_) = schema_errors(bad)
    assert first.startswith("$.resource.status: 'kinda' is not one of")


def test_record_types_in_code_are_the_schema_types() -> None:
    """tfaudit.schema.RecordType, which the code uses for every record type, is exactly the
    schema's `type` enum: a record type cannot exist in one and not the other."""
    from tfaudit.schema import RecordType, record_schema

    assert sorted(t.value for t in RecordType) == sorted(record_schema()["properties"]["type"]["enum"])
