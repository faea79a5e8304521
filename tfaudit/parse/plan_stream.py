"""Read a plan JSON file one resource change at a time, in bounded memory.

`terraform show -json` of a large plan is mostly `planned_values`, `prior_state` and
`configuration`, which analysis does not need, and `resource_changes`, which it needs
one element at a time. Decoding the whole document costs about five times the file's
size in Python objects; this reader walks the top-level object with the standard
library's C decoder (`raw_decode`) on a sliding window of the file, hands each
`resource_changes`/`resource_drift` element to a callback and lets it go, and steps
through the big sections element by element without keeping them. Peak memory is the
window plus the largest single element.

Only the plain case is streamed: one UTF-8 JSON object. Anything else (UTF-16, the
setup-terraform wrapper, concatenated plans, invalid JSON, duplicate keys, a document
that turns out not to be a plan) raises `NotStreamable`, and the caller reads the file
with the full parser, which accepts or rejects it with its usual messages. So the two
paths never disagree about what a file is.
"""

from __future__ import annotations

import codecs
import json
import re
from collections.abc import Callable, Iterator
from typing import Any, BinaryIO

from tfaudit.parse.plan import Plan, ResourceChange, plan_from_document, resource_change_from_json

CHUNK = 1 << 20
LOW_WATER = 256 << 10  # read ahead when less than this is left in the window
_WS = re.compile(r"[ \t\n\r]*")
_WS_CHARS = " \t\n\r"
_raw_decode = json.JSONDecoder().raw_decode

# Top-level members streamed element by element.
STREAMED = ("resource_changes", "resource_drift")
# Members stepped through without being kept, and the nested keys whose containers are
# walked rather than decoded whole (their leaves are single resources or modules).
SKIPPED = frozenset({"planned_values", "prior_state", "configuration", "relevant_attributes"})
_WALK = frozenset({"planned_values", "prior_state", "configuration", "values", "root_module", "child_modules",
                   "module_calls", "module", "resources", "relevant_attributes"})
# Placeholders that keep a skipped member's presence visible to the plan sniffer.
# `checks` is kept whole: one small entry per checked object, read by the failing-check rule.
_PLACEHOLDER: dict[str, Any] = {"planned_values": {}, "prior_state": {}, "configuration": {},
                                "relevant_attributes": []}


def _discard(value: Any) -> None:
    pass


class NotStreamable(Exception):
    """The file is not a plain single UTF-8 plan document: read it with the full parser."""


class _Reader:
    __slots__ = ("_f", "_dec", "buf", "pos", "eof", "begin")

    def __init__(self, f: BinaryIO) -> None:
        self._f = f
        self._dec = codecs.getincrementaldecoder("utf-8")()
        self.buf = ""
        self.pos = 0
        self.eof = False
        self.begin = 0  # where in buf the value last decoded by value() begins

    def start(self) -> None:
        head = self._f.read(4)
        if head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
            raise NotStreamable("UTF-16")
        if head.startswith(codecs.BOM_UTF8):
            head = head[3:]
        try:
            self.buf = self._dec.decode(head)
        except UnicodeDecodeError:
            raise NotStreamable("not UTF-8") from None

    def more(self, n: int | None = None) -> bool:
        if self.eof:
            return False
        data = self._f.read(n or CHUNK)
        try:
            text = self._dec.decode(data, final=not data)
        except UnicodeDecodeError:
            raise NotStreamable("not UTF-8") from None
        if not data:
            self.eof = True
        if self.pos:
            self.buf = self.buf[self.pos:]
            self.pos = 0
        if text:
            self.buf += text
        return bool(data or text)

    def peek(self) -> str:
        buf, pos = self.buf, self.pos
        if pos < len(buf) and buf[pos] not in " \t\n\r":  # compact JSON: the usual case
            return buf[pos]
        while True:
            m = _WS.match(self.buf, self.pos)
            self.pos = m.end() if m else self.pos
            if self.pos < len(self.buf):
                return self.buf[self.pos]
            if not self.more():
                return ""

    def value(self) -> Any:
        if self.peek() == "":
            raise NotStreamable("unexpected end of file")
        if len(self.buf) - self.pos < LOW_WATER and not self.eof:
            # Top up before decoding: a failed decode at the window's edge is expensive
            # (the decoder's error counts lines up to the failure).
            self.more()
        n = CHUNK
        while True:
            try:
                v, end = _raw_decode(self.buf, self.pos)
            except json.JSONDecodeError:
                # Most likely the element runs past the window: read more (doubling, so a
                # huge element costs O(n log n)) until the end of the file says otherwise.
                if not self.more(n):
                    raise NotStreamable("invalid JSON") from None
                n *= 2
                continue
            except RecursionError:
                raise NotStreamable("nesting too deep") from None
            if end == len(self.buf) and not self.eof:
                # A number or literal at the window's edge may continue in the next read.
                if self.more():
                    continue
            self.begin = self.pos
            self.pos = end
            return v

    def expect(self, c: str) -> None:
        if self.peek() != c:
            raise NotStreamable(f"expected {c!r}")
        self.pos += 1

    def members(self) -> Iterator[str]:
        """Each key of the object at the cursor, with the cursor left on its value."""
        for _ in self._items("}"):
            if self.peek() != '"':
                raise NotStreamable("expected a key")
            key = self.value()
            self.expect(":")
            yield key

    def elements(self) -> Iterator[None]:
        """Once per element of the array at the cursor, with the cursor left on it."""
        return self._items("]")

    def _items(self, close: str) -> Iterator[None]:
        # The separators of an object ("}") or array ("]"): the caller reads each item at the yield.
        self.expect("{" if close == "}" else "[")
        if self.peek() == close:
            self.pos += 1
            return
        while True:
            yield None
            c = self.peek()
            self.pos += 1
            if c == close:
                return
            if c != ",":
                raise NotStreamable(f"expected ',' or {close!r}")

    def each_value(self, sink: Callable[[Any], None], text_sink: Callable[[str], None] | None = None) -> None:
        """Decode the array at the cursor element by element, handing each to sink (and,
        with text_sink, its JSON text exactly as in the file, first).

        The loop is `elements()` + `value()` with their common case inlined: this runs
        once per resource in every big section of the plan.
        """
        self.expect("[")
        if self.peek() == "]":
            self.pos += 1
            return
        decode = _raw_decode
        while True:
            buf, pos = self.buf, self.pos
            if len(buf) - pos < LOW_WATER and not self.eof:
                self.more()
                buf, pos = self.buf, self.pos
            end = -1
            if pos < len(buf) and buf[pos] not in _WS_CHARS:
                try:
                    v, end = decode(buf, pos)
                except (json.JSONDecodeError, RecursionError):
                    end = -1
                else:
                    if end == len(buf) and not self.eof:
                        end = -1  # may continue past the window: take the careful path
            if end < 0:
                v = self.value()
                buf, pos, end = self.buf, self.begin, self.pos
            if text_sink is not None:
                text_sink(buf[pos:end])
            sink(v)
            if end < len(buf):
                c = buf[end]
                if c == ",":
                    self.pos = end + 1
                    continue
                if c == "]":
                    self.pos = end + 1
                    return
            self.pos = end
            c = self.peek()
            self.pos += 1
            if c == "]":
                return
            if c != ",":
                raise NotStreamable("expected ',' or ']'")

    def skip(self, key: str, walk_all: bool = False) -> None:
        """Step over one value, walking module/resource containers so no big value is decoded whole."""
        c = self.peek()
        if c == "{" and (walk_all or key in _WALK):
            every = key == "module_calls"  # its members are module names
            for k in self.members():
                self.skip(k, every)
        elif c == "[" and key == "child_modules":
            for _ in self.elements():
                if self.peek() == "{":
                    self.skip(key, True)
                else:
                    self.value()
        elif c == "[" and key in _WALK:
            self.each_value(_discard)
        else:
            self.value()


def _configuration(r: _Reader) -> dict[str, Any]:
    """Step over `configuration`, keeping only the root module's variable declarations (which
    say what is `sensitive`; the plan's `sensitive_variables` come from them)."""
    kept: dict[str, Any] = {}
    for key in r.members():
        if key != "root_module" or r.peek() != "{":
            r.skip(key)
            continue
        root: dict[str, Any] = {}
        for member in r.members():
            if member == "variables":
                root[member] = r.value()
            else:
                r.skip(member)
        kept[key] = root
    return kept


def stream_plan(f: BinaryIO, source: str, on_change: Callable[[ResourceChange], None],
                on_drift: Callable[[ResourceChange], None],
                on_change_text: Callable[[str], None] | None = None) -> Plan:
    """Feed every resource change and drift entry to the callbacks; returns the plan's shell.

    on_change_text, when given, gets each resource change's JSON text (as in the file) just
    before on_change gets the change. The shell is the plan without its resource changes
    (validated like parse_plan would).
    Raises NotStreamable when the file must be read by the full parser instead; callers
    must then discard whatever the callbacks collected.
    """
    r = _Reader(f)
    r.start()
    first = r.peek()
    if first == "":
        raise NotStreamable("empty")
    if first != "{":
        raise NotStreamable("not a JSON object")
    shell: dict[str, Any] = {}
    counts = {"resource_changes": 0, "resource_drift": 0}
    for key in r.members():
        if key in shell:
            raise NotStreamable(f"duplicate key {key!r}")
        if key in counts and r.peek() == "[":
            shell[key] = []
            callback = on_change if key == "resource_changes" else on_drift
            index = [0]

            def handle(obj: Any, key: str = key, callback: Callable[[ResourceChange], None] = callback) -> None:
                try:
                    ch = resource_change_from_json(obj, f"{key}[{index[0]}]", source)
                except Exception:  # noqa: BLE001 - the full parser reports it properly
                    raise NotStreamable("invalid resource change") from None
                index[0] += 1
                callback(ch)

            r.each_value(handle, on_change_text if key == "resource_changes" else None)
            counts[key] = index[0]
        elif key == "configuration" and r.peek() == "{":
            shell[key] = _configuration(r)
        elif key in SKIPPED:
            r.skip(key)
            shell[key] = _PLACEHOLDER[key]
        else:
            shell[key] = r.value()
    if r.peek() != "":
        raise NotStreamable("more than one document")
    try:
        return plan_from_document(shell, source)
    except Exception:  # noqa: BLE001 - not a plan after all: let the full parser say what it is
        raise NotStreamable("not a plan") from None
