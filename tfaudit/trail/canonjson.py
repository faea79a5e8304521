"""RFC 8785 (JCS) canonical JSON, fast for what records are made of.

The `rfc8785` package serializes in Python, value by value: about 0.5 ms for a resource.changed
record. For most values RFC 8785 is exactly what the standard library's C encoder writes with
sorted keys, no spaces and no ASCII escaping:

- strings: both escape the same characters the same way (\\" \\\\ \\b \\f \\n \\r \\t, other
  controls as lowercase \\u00xx) and write the rest as is, in UTF-8;
- keys: sorted by UTF-16 code units (RFC 8785) or by code points (Python), the same order unless
  a key holds a character beyond U+FFFF: a text with one goes to `rfc8785`;
- integers within +-(2**53 - 1);
- floats whose shortest repr (what both start from) has no exponent and no ".0" ending: `rfc8785`
  rewrites only those (ECMAScript spells 1.0 as 1, 1e-07 as 1e-7, 1e+16 as 10000000000000000).

Such a value is encoded in C and proven to be one by decoding the text again (every float and
integer checked as above, equal to the input: no tuple, no non-string key); anything
else goes to `rfc8785`, as does a lone surrogate (which it refuses).
"""

from __future__ import annotations

import json
from typing import Any

import rfc8785

_INT_LIMIT = 2**53 - 1


class _NotPlain(Exception):
    pass


class _Integral(_NotPlain):
    """A float such as 0.0 or 3.0, which RFC 8785 spells as the integer."""


def _plain_float(text: str) -> float:
    if "e" in text or "E" in text:
        raise _NotPlain(text)  # rfc8785 respells it
    if text.endswith(".0"):
        raise _Integral(text)
    return float(text)


def _safe_int(text: str) -> int:
    n = int(text)
    if -_INT_LIMIT <= n <= _INT_LIMIT:
        return n
    raise _NotPlain(text)


def _integral_as_int(value: Any) -> Any:
    """value with each integral float within +-(2**53 - 1) an int: the same RFC 8785 text (0.0 and
    -0.0 are 0, 3.0 is 3), which the C encoder then writes."""
    if type(value) is float:
        return int(value) if value.is_integer() and -_INT_LIMIT <= value <= _INT_LIMIT else value
    if type(value) is dict:
        return {k: _integral_as_int(v) for k, v in value.items()}
    if type(value) is list:
        return [_integral_as_int(v) for v in value]
    return value


def _c_encoded(obj: Any, *, retry: bool = True) -> bytes | None:
    """obj's RFC 8785 text from the C encoder, when it is surely that (see the module's doc)."""
    try:
        text = json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    except (TypeError, ValueError):
        return None
    if not (text.isascii() or max(text) <= "\uffff"):
        return None
    try:
        if json.loads(text, parse_float=_plain_float, parse_int=_safe_int) == obj:
            return text.encode("utf-8")
    except _Integral:
        return _c_encoded(_integral_as_int(obj), retry=False) if retry else None
    except (_NotPlain, UnicodeEncodeError):
        pass
    return None


def dumps(obj: Any) -> bytes:
    """RFC 8785 canonical JSON bytes of obj (errors as `rfc8785.dumps` raises them)."""
    encoded = _c_encoded(obj)
    return encoded if encoded is not None else rfc8785.dumps(obj)
