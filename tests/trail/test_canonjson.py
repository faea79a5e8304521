"""The fast RFC 8785 encoder writes exactly what the `rfc8785` package writes, or raises what it raises."""

from __future__ import annotations

import enum
from types import MappingProxyType
from typing import Any

import pytest
import rfc8785
from hypothesis import given, settings
from hypothesis import strategies as st

from tfaudit.trail import canonjson

_scalars = (st.none() | st.booleans() | st.integers(min_value=-(2**60), max_value=2**60)
            | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=12))
_values = st.recursive(_scalars, lambda inner: st.lists(inner, max_size=4)
                       | st.dictionaries(st.text(max_size=6), inner, max_size=4), max_leaves=25)


def _same(value: Any) -> None:
    try:
        expected = rfc8785.dumps(value)
    except rfc8785.CanonicalizationError as e:
        with pytest.raises(type(e)):
            canonjson.dumps(value)
        return
    assert canonjson.dumps(value) == expected


@settings(max_examples=400, deadline=None)
@given(_values)
def test_any_json_value_is_encoded_as_rfc8785_does(value: Any) -> None:
    _same(value)


# what records hold: durations, sizes and ratios, text in any script, keys beyond the BMP
_record_floats = (st.floats(min_value=-1e6, max_value=1e6, allow_nan=False) | st.floats(min_value=1e-9, max_value=1e-3)
                  | st.floats(min_value=1e15, max_value=1e22) | st.integers(-10**6, 10**6).map(float)
                  | st.floats(0, 100_000).map(lambda f: round(f, 3)))
_any_text = st.text(alphabet=st.characters(codec="utf-8"), max_size=8) | st.text(max_size=8)


@settings(max_examples=600, deadline=None)
@given(st.dictionaries(_any_text, _record_floats | _any_text | st.lists(_record_floats, max_size=3), max_size=6))
def test_floats_and_any_text_are_encoded_as_rfc8785_does(value: Any) -> None:
    _same(value)


class Colour(enum.StrEnum):
    RED = "red"


@pytest.mark.parametrize("value", [
    {"b": 1, "a": [True, None, "x\n\t\"\\\x01\x7f/"], "c": {}},  # escapes and order, the C encoder
    {"z": 2**53 - 1, "y": -(2**53 - 1)},
    {"big": 2**53},  # out of JCS's integer domain: rfc8785's error
    {"f": 1.0, "g": 1e21, "h": 5e-7, "i": -0.0},  # floats: ES6 spelling, through rfc8785
    {"f": 0.001, "g": 123.456, "h": -2.5, "i": 1e15 + 0.5, "j": 0.0001, "k": 1e16, "l": 1e-5, "m": 0.0},
    {"a": "caf\u00e9", "\u00e9t\u00e9": "\u2028\u2029\x7f\u00a0", "b": ["\u65e5\u672c", "\U0001f600"]},
    {"\ue000": 1, "\U00010000": 2},  # code point order differs from UTF-16 order here
    {"a": 0.0, "b": -0.0, "c": [3.0, -7.0], "d": 9007199254740991.0, "e": 9007199254740992.0, "f": 1e20},
    {"a": 2.0, "t": (1, 2)}, {"a": 2.0, "s": "lone \ud800"}, {"a": 2.0, "big": 2**60},
    {"\u00e9": 1, "e": 2, "\U0001f600": 3, "\uff61": 4},  # non-ASCII keys: UTF-16 order
    {"t": (1, 2)}, {1: "int key"}, {"m": MappingProxyType({"a": 1})},
    {"enum": Colour.RED, "s": "lone \ud800"},
    {"type": "resource.changed", "resource": {"address": "aws_s3_bucket.b[\"x\"]", "before": None,
                                              "after": {"tags": {"env": "prod"}}, "elapsed_seconds": None}},
])
def test_edge_values_are_encoded_as_rfc8785_does(value: Any) -> None:
    _same(value)


def test_a_record_with_durations_and_any_text_is_encoded_in_c(monkeypatch: pytest.MonkeyPatch) -> None:
    """What apply writes 1,000 times a run (elapsed times, non-ASCII names) never needs `rfc8785`."""
    record = {"type": "resource.changed", "resource": {"address": "terraform_data.r[\"caf\u00e9\"]",
                                                       "after": {"name": "<\u65e5\u672c>&", "n": 3}},
              "outcome": {"status": "succeeded", "phases": [{"action": "create", "elapsed_seconds": 0.123}],
                          "duration_seconds": 14.987, "exit_code": 0, "waited": 0.0, "n": -3.0, "z": -0.0}}
    expected = rfc8785.dumps(record)

    def refuse(value: Any) -> bytes:
        raise AssertionError("went to rfc8785")

    monkeypatch.setattr(canonjson.rfc8785, "dumps", refuse)
    assert canonjson.dumps(record) == expected
