"""RFC 8785 (JCS) canonical JSON, fast for what records are made of.

The `rfc8785` package serializes in Python, value by value: about 0.6 ms for a resource.changed
record, twice per record (the signed payload and the line). For a value that is only dicts
with string keys, lists, ASCII strings, booleans, None and integers within +-(2**53 - 1), RFC
8785 is exactly what the standard library's C encoder writes with sorted keys and no spaces:
ASCII keys sort the same by UTF-16 code units as by code points, and both escape the same
characters the same way (\\" \\\\ \\b \\f \\n \\r \\t, other controls as lowercase \\u00xx). Such a
value is encoded in C and proven to be one by decoding the text again (no float, no integer out
of range, equal to the input: no tuple, no non-string key); anything else goes to `rfc8785`.
"""

from __future__ import annotations

import json
from typing import Any

import rfc8785

_INT_LIMIT = 2**53 - 1


class _NotPlain(Exception):
    pass


def _no_float(text: str) -> Any:
    raise _NotPlain(text)


def _safe_int(text: str) -> int:
    n = int(text)
    if -_INT_LIMIT <= n <= _INT_LIMIT:
        return n
    raise _NotPlain(text)


def dumps(obj: Any) -> bytes:
    """RFC 8785 canonical JSON bytes of obj (errors as `rfc8785.dumps` raises them)."""
    try:
        text = json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    except (TypeError, ValueError):
        return rfc8785.dumps(obj)
    if text.isascii():
        try:
            if json.loads(text, parse_float=_no_float, parse_int=_safe_int) == obj:
                return text.encode("ascii")
        except _NotPlain:
            pass
    return rfc8785.dumps(obj)
