"""The compiled record schema kept between runs (tfaudit.schema.compiled)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import fastjsonschema
import pytest

from tfaudit.schema import _schema_text, record_schema
from tfaudit.schema.compiled import fast_validator


def _cached(tmp_path: Path) -> Path:
    (found,) = (tmp_path / "tfaudit").glob("record-schema-*.marshal")
    return found


def _judges_like_fastjsonschema(validate: object) -> None:
    assert callable(validate)
    with pytest.raises(fastjsonschema.JsonSchemaException):
        validate({"type": "run.started"})  # far from a record
    reference = fastjsonschema.compile(record_schema(), use_default=False, use_formats=False)
    assert validate.__name__ == reference.__name__


def test_the_validator_is_compiled_once_then_read_back(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    magic = importlib.util.MAGIC_NUMBER.hex()
    stale = tmp_path / "tfaudit" / f"record-schema-{magic}-older.marshal"  # an earlier schema's
    stale.parent.mkdir()
    stale.write_bytes(b"x")
    first = fast_validator(record_schema(), _schema_text())
    _judges_like_fastjsonschema(first)
    cache = _cached(tmp_path)  # the one file: the stale one is gone
    assert cache.stat().st_mode & 0o777 == 0o600
    monkeypatch.setattr(fastjsonschema, "compile_to_code", lambda *a, **k: pytest.fail("compiled again"))
    _judges_like_fastjsonschema(fast_validator(record_schema(), _schema_text()))


@pytest.mark.parametrize("spoil", ["corrupt", "shared"])
def test_a_cache_file_that_is_not_private_or_not_code_is_rebuilt(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                  spoil: str) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    fast_validator(record_schema(), _schema_text())
    cache = _cached(tmp_path)
    if spoil == "corrupt":
        cache.write_bytes(b"not marshal data")
    else:
        cache.chmod(0o666)  # anyone could have written it: never run it
    compiled: list[int] = []
    real = fastjsonschema.compile_to_code
    monkeypatch.setattr(fastjsonschema, "compile_to_code", lambda *a, **k: compiled.append(1) or real(*a, **k))
    _judges_like_fastjsonschema(fast_validator(record_schema(), _schema_text()))
    assert compiled == [1] and cache.stat().st_mode & 0o777 == 0o600
