"""The strict reader of ledger lines, shared by verify and every command that reads a ledger.

A ledger line is untrusted input: anyone who can write the file can put anything in it.
Each line is judged alone, and a bad line is a `BadLine` (a ValueError, with a kind and a
one-line reason) that the reader reports with its line number before going on to the next.
Strict means what the writer can produce and nothing more:

- at most `MAX_LINE_BYTES` bytes (the reader stops buffering there: memory stays bounded
  by that window, not by the file, so /dev/zero or a file with no newline is refused);
- UTF-8, one JSON object, no NaN or Infinity, no number outside what RFC 8785 (the
  canonical form every line is written in) can write: integers within +/-(2**53 - 1),
  finite floats;
- no lone UTF-16 surrogate (`"\\ud800"`): it cannot be written back as UTF-8;
- at most `MAX_DEPTH` levels of nesting, checked before the decoder runs, so a
  100,000-deep line never reaches a recursive parser, canonicalizer or schema validator.
"""

from __future__ import annotations

import json
import math
import re
from array import array
from itertools import accumulate
from collections.abc import Iterator
from enum import Enum
from typing import Any, BinaryIO

import orjson

MAX_LINE_BYTES = 16 * 1024 * 1024  # a record is kilobytes; 16 MiB leaves room for huge resource values
MAX_DEPTH = 128  # a record nests about 10 levels plus the resource's own values
MAX_SAFE_INT = 2**53 - 1  # RFC 8785 / I-JSON: integers a double holds exactly
_READ_BLOCK = 1 << 20


class LineFault(str, Enum):
    TOO_LONG = "too_long"
    TORN = "torn_line"
    NOT_UTF8 = "not_utf8"
    NOT_JSON = "not_json"
    NUMBER = "bad_number"
    SURROGATE = "lone_surrogate"
    TOO_DEEP = "too_deep"
    NOT_OBJECT = "not_object"


class BadLine(ValueError):
    """One ledger line that is not a strict JSON record: what is wrong, in one line."""

    def __init__(self, fault: LineFault, message: str) -> None:
        super().__init__(message)
        self.fault = fault
        self.message = message


def _bad_constant(name: str) -> Any:
    raise BadLine(LineFault.NUMBER, f"{name} is not a JSON number (NaN and Infinity are not allowed)")


_floats_seen: list[str] = []  # the float literals of the line being decoded (for the canonical-form check)


def _strict_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise BadLine(LineFault.NUMBER, f"number {text[:40]} is out of range (not a finite double)")
    _floats_seen.append(text)
    return value


def _strict_int(text: str) -> int:
    if len(text) > 17:  # more digits than 2**53 has: out of range, and never hand 4,300 digits to int()
        raise BadLine(LineFault.NUMBER, f"integer {text[:40]}{'...' if len(text) > 40 else ''} is out of range "
                                        f"(beyond +/-{MAX_SAFE_INT})")
    value = int(text)
    if -MAX_SAFE_INT <= value <= MAX_SAFE_INT:
        return value
    raise BadLine(LineFault.NUMBER, f"integer {text} is out of range (beyond +/-{MAX_SAFE_INT})")


_DECODER = json.JSONDecoder(parse_float=_strict_float, parse_int=_strict_int, parse_constant=_bad_constant)
# Integers of up to 15 digits are always within range: lines without a longer digit run (the
# usual case) are decoded with the C decoder's own integers, without a call per integer.
_FAST_DECODER = json.JSONDecoder(parse_float=_strict_float, parse_constant=_bad_constant)
_DIGITS_AS_ZERO = bytes.maketrans(b"123456789", b"000000000")
_LONG_DIGITS = b"0" * 16  # found in the line with every digit made 0: a run of 16 digits (a regex costs 10x)
_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
_NOT_BRACKET = re.compile(rb"[^\[\]{}]+")
_DEPTH_STEP = bytes.maketrans(b"[{]}", b"\x01\x01\xff\xff")  # +1 / -1 as signed bytes
_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")


def _too_deep(line: bytes) -> bool:
    """Whether brackets outside strings nest deeper than MAX_DEPTH (linear time, in C loops)."""
    if line.count(b"[") + line.count(b"{") <= MAX_DEPTH:
        return False  # cannot nest deeper than it has brackets
    brackets = _NOT_BRACKET.sub(b"", _STRING.sub(b"", line)).translate(_DEPTH_STEP)
    return bool(brackets) and max(accumulate(array("b", brackets))) > MAX_DEPTH


def _has_lone_surrogate(value: Any) -> bool:
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return True
        return False
    if isinstance(value, dict):
        return any(_has_lone_surrogate(k) or _has_lone_surrogate(v) for k, v in value.items())
    if isinstance(value, list):
        return any(_has_lone_surrogate(v) for v in value)
    return False


def decode_value(line: bytes) -> Any:
    """Decode one strict JSON value from `line` (no newline), or raise BadLine.

    orjson (about 2x faster) decodes lines on which it reads exactly what the strict decoder
    reads: it refuses invalid UTF-8, lone surrogates, NaN, Infinity and out-of-range floats
    itself; lines that nest too deep or hold a run of 16 digits (a possibly out-of-range
    integer) never reach it. Whatever it refuses goes to the strict decoder, whose verdict and
    message stand.
    """
    if len(line) <= MAX_LINE_BYTES and _LONG_DIGITS not in line.translate(_DIGITS_AS_ZERO) and not _too_deep(line):
        try:
            return orjson.loads(line)
        except ValueError:  # orjson.JSONDecodeError
            pass
    return decode_with_floats(line)[0]


def decode_with_floats(line: bytes) -> tuple[Any, tuple[str, ...]]:
    """decode_value, plus the float literals as written (is_canonical needs them)."""
    if len(line) > MAX_LINE_BYTES:
        raise BadLine(LineFault.TOO_LONG, f"line is longer than {MAX_LINE_BYTES // (1024 * 1024)} MiB")
    try:
        text = line.decode("utf-8")
    except UnicodeDecodeError as e:
        raise BadLine(LineFault.NOT_UTF8, f"not UTF-8 (undecodable byte at column {e.start + 1})") from None
    if _too_deep(line):
        raise BadLine(LineFault.TOO_DEEP, f"JSON nests deeper than {MAX_DEPTH} levels")
    _floats_seen.clear()
    try:
        decoder = _DECODER if _LONG_DIGITS in line.translate(_DIGITS_AS_ZERO) else _FAST_DECODER
        value, end = decoder.raw_decode(text, _skip_ws(text, 0))
    except BadLine:
        raise  # a number hook's own verdict
    except json.JSONDecodeError as e:
        raise BadLine(LineFault.NOT_JSON, f"not valid JSON ({e.msg} at column {e.colno})") from None
    except RecursionError:  # unreachable after _too_deep; kept so no input can crash a reader
        raise BadLine(LineFault.TOO_DEEP, f"JSON nests deeper than {MAX_DEPTH} levels") from None
    except ValueError as e:  # int() refusing a number (e.g. too many digits)
        raise BadLine(LineFault.NUMBER, f"bad number ({str(e)[:80]})") from None
    if _skip_ws(text, end) != len(text):
        raise BadLine(LineFault.NOT_JSON, f"not valid JSON (extra data at column {end + 1})")
    if _SURROGATE_ESCAPE.search(line) and _has_lone_surrogate(value):
        raise BadLine(LineFault.SURROGATE, "a string holds a lone UTF-16 surrogate (\\ud800-\\udfff escape), "
                                           "which is not Unicode text")
    return value, tuple(_floats_seen)


def parse_line(line: bytes) -> dict[str, Any]:
    """One ledger line (with or without its newline) as a record object, or raise BadLine."""
    if line.endswith(b"\n"):
        line = line[:-1]
    value = decode_value(line)
    if not isinstance(value, dict):
        raise BadLine(LineFault.NOT_OBJECT, "line is JSON but not a record object")
    return value


def parse_record(line: bytes) -> tuple[dict[str, Any], tuple[str, ...]]:
    """parse_line, plus the float literals as written (for is_canonical)."""
    if line.endswith(b"\n"):
        line = line[:-1]
    value, floats = decode_with_floats(line)
    if not isinstance(value, dict):
        raise BadLine(LineFault.NOT_OBJECT, "line is JSON but not a record object")
    return value, floats


def is_canonical(value: Any, line: bytes, floats: tuple[str, ...] | None = None) -> bool:
    """Whether `line` (no newline) is the RFC 8785 form of `value`, decoded from it with `floats`
    (the float literals as written; None: the floats are taken from `value`).

    The standard library's sorted compact dump is RFC 8785 for ASCII keys, integers and
    strings (same escapes), about four times faster than the rfc8785 package; floats are
    checked one by one (the dump writes each as its repr: when every repr is the RFC 8785
    spelling and the dump is the line, so is RFC 8785's), and anything else is left to rfc8785.
    """
    import rfc8785

    if floats is None:
        floats = tuple(repr(f) for f in _floats_in(value))
    if line.isascii() and all(rfc8785.dumps(float(f)).decode() == f for f in floats):
        fast = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
        if fast.encode() == line:
            return True
        if not floats:
            return False  # the two serializers agree on everything else this line holds
    try:
        return bool(rfc8785.dumps(value) == line)
    except (rfc8785.CanonicalizationError, RecursionError):
        return False


def _floats_in(value: Any) -> list[float]:
    """Every float in a decoded JSON value (keys are strings)."""
    found: list[float] = []
    stack = [value]
    while stack:
        item = stack.pop()
        kind = type(item)
        if kind is dict:
            stack.extend(item.values())
        elif kind is list:
            stack.extend(item)
        elif kind is float:
            found.append(item)
    return found


_WS = re.compile(r"[ \t\n\r]*")


def _skip_ws(text: str, pos: int) -> int:
    m = _WS.match(text, pos)
    return m.end() if m else pos


def bounded_lines(f: BinaryIO, limit: int = MAX_LINE_BYTES) -> Iterator[bytes]:
    """The lines of a binary file, each with its newline (a final line may lack one).

    Read in blocks, so memory is a block plus at most one line of `limit` bytes. A longer
    line is not kept whole: its first `limit + 1` bytes are yielded (no newline: the caller
    sees an over-long line and reports it) and the rest is skipped up to its newline.
    """
    pending: list[bytes] = []  # the pieces of a line that runs past a block
    size = 0
    skipping = False
    while block := f.read(_READ_BLOCK):
        start = 0
        while (nl := block.find(b"\n", start)) >= 0:
            piece = block[start:nl + 1]
            start = nl + 1
            if skipping:
                skipping = False
                continue
            if pending:
                pending.append(piece)
                piece, pending, size = b"".join(pending), [], 0
            yield piece if len(piece) <= limit + 1 else piece[:limit + 1]
        if start < len(block) and not skipping:
            pending.append(block[start:])
            size += len(block) - start
            if size > limit:
                yield b"".join(pending)[:limit + 1]
                pending, size, skipping = [], 0, True
    if pending:
        yield b"".join(pending)
