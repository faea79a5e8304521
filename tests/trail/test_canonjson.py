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


class Colour(enum.StrEnum):
    RED = "red"


@pytest.mark.parametrize("value", [
    {"b": 1, "a": [True, None, "x\n\t\"\\\x01\x7f/"], "c": {}},  # escapes and order, the C encoder
    {"z": 2**53 - 1, "y": -(2**53 - 1)},
    {"big": 2**53},  # out of JCS's integer domain: rfc8785's error
    {"f": 1.0, "g": 1e21, "h": 5e-7, "i": -0.0},  # floats: ES6 spelling, through rfc8785
    {"\u00e9": 1, "e": 2, "\U0001f600": 3, "\uff61": 4},  # non-ASCII keys: UTF-16 order
    {"t": (1, 2)}, {1: "int key"}, {"m": MappingProxyType({"a": 1})},
    {"enum": Colour.RED, "s": "lone \ud800"},
    {"type": "resource.changed", "resource": {"address": "aws_s3_bucket.b[\"x\"]", "before": None,
                                              "after": {"tags": {"env": "prod"}}, "elapsed_seconds": None}},
])
def test_edge_values_are_encoded_as_rfc8785_does(value: Any) -> None:
    _same(value)
