"""Bytes in, JSON documents out, for every file tfaudit reads from terraform.

Real files are not always clean: PowerShell's `>` writes UTF-16 with a byte-order
mark, Windows adds CRLF, hashicorp/setup-terraform's wrapper surrounds stdout with
its own lines, and `terragrunt run-all show -json` concatenates one plan per module.
This module undoes exactly those cases and nothing looser, so a damaged file is an
error rather than a guess.

Error messages name the source and a position, never file contents: plans and
states hold secrets.
"""

from __future__ import annotations

import codecs
import json
import re
from collections.abc import Callable, Mapping
from typing import Any

from tfaudit.errors import InputError

_WS = re.compile(r"[ \t\n\r]*")
_DECODER = json.JSONDecoder()


# The standard library, not orjson (a dependency, for ledger lines): orjson reads an integer
# beyond 64 bits as a float, which would change a recorded value, and takes 40% more memory
# on a big plan.
_fast_loads: Callable[[str], Any] = json.loads

_BOMS: tuple[tuple[bytes, str, str], ...] = (
    (codecs.BOM_UTF8, "utf-8", "UTF-8"),
    (codecs.BOM_UTF16_LE, "utf-16-le", "UTF-16LE"),
    (codecs.BOM_UTF16_BE, "utf-16-be", "UTF-16BE"),
)


def decode_text(data: bytes | str, *, source: str, error: type[InputError], hint: str) -> str:
    """Decode UTF-8 (with or without BOM) or UTF-16 with a BOM; drop the BOM."""
    if isinstance(data, str):
        return data[1:] if data.startswith("\ufeff") else data
    for bom, codec, label in _BOMS:
        if data.startswith(bom):
            break
    else:
        bom, codec, label = b"", "utf-8", "UTF-8"
    try:
        return data[len(bom):].decode(codec)
    except UnicodeDecodeError as e:
        offset = e.start + len(bom)
        # `from None`: the decode error carries the raw bytes, which may be secret.
        raise error(f"{source}: not {label} text (undecodable bytes at offset {offset})", hint=hint) from None


def _position(text: str, pos: int) -> str:
    line = text.count("\n", 0, pos) + 1
    col = pos - (text.rfind("\n", 0, pos) + 1) + 1
    return f"line {line} column {col}"


def _skip_ws(text: str, pos: int) -> int:
    m = _WS.match(text, pos)
    return m.end() if m else pos


def _unwrap_setup_terraform(text: str) -> tuple[int, int] | None:
    """Span of the JSON document inside hashicorp/setup-terraform wrapper output.

    The wrapper prints `[command]<terraform> <args>`, then terraform's stdout, then
    GitHub workflow commands (`::debug::`, `::set-output ...`). Only that exact
    shape is accepted; anything else stays an error.
    """
    newline = text.find("\n")
    if newline < 0:
        return None
    start = _skip_ws(text, newline + 1)
    try:
        _, end = _DECODER.raw_decode(text, start)
    except json.JSONDecodeError:
        return None
    trailer = text[end:].splitlines()
    if all(not line.strip() or line.startswith("::") for line in trailer):
        return start, end
    return None


def decode_documents(
    data: bytes | str, *, source: str, error: type[InputError], hint: str
) -> list[Any]:
    """Every JSON document in `data`, in order (one unless they were concatenated)."""
    text = decode_text(data, source=source, error=error, hint=hint)
    try:
        return _decode_documents(text, source=source, error=error, hint=hint)
    except RecursionError:  # a value nested thousands deep: refuse it, never crash
        raise error(f"{source}: JSON nests too deep", hint=hint) from None


def _decode_documents(text: str, *, source: str, error: type[InputError], hint: str) -> list[Any]:
    try:
        return [_fast_loads(text)]
    except ValueError:
        pass  # not exactly one clean document: find out what it is below

    pos = _skip_ws(text, 0)
    if pos == len(text):
        raise error(f"{source}: is empty", hint=hint)
    if text.startswith("[command]", pos):
        span = _unwrap_setup_terraform(text)
        if span is not None:
            return [json.loads(text[span[0]:span[1]])]

    docs: list[Any] = []
    while pos < len(text):
        try:
            doc, end = _DECODER.raw_decode(text, pos)
        except json.JSONDecodeError as e:
            if docs and e.pos == pos:
                what = "extra data after the JSON document"
            else:
                what = e.msg
            # `from None`: JSONDecodeError.doc holds the whole file, which may be secret.
            raise error(f"{source}: not valid JSON ({what} at {_position(text, e.pos)})", hint=hint) from None
        docs.append(doc)
        pos = _skip_ws(text, end)
    return docs


# What a JSON document looks like, for "you passed the wrong file" messages.
_PLAN_KEYS = frozenset({"planned_values", "resource_changes", "resource_drift", "output_changes", "prior_state"})

DESCRIPTIONS: Mapping[str, str] = {
    "plan": "a plan from 'terraform show -json PLANFILE'",
    "plan-without-format-version": "a plan but has no format_version (hand-edited or truncated?)",
    "state": "a state file",
    "state-show-json": "'terraform show -json' output of a state, not of a plan",
    "encrypted-state": "an OpenTofu encrypted state",
    "stream-message": "a machine-readable UI stream ('terraform apply -json' / 'plan -json' output)",
    "stream-array": "machine-readable UI messages saved as a JSON array",
    "diagnostic": "a single diagnostic object",
    "provider-schemas": "'terraform providers schema -json' output",
    "array": "a JSON array",
    "scalar": "a JSON scalar",
    "unknown": "an unrecognised JSON object",
}


def sniff(doc: Any) -> str:
    """Name the kind of terraform JSON document `doc` looks like (a DESCRIPTIONS key)."""
    if isinstance(doc, list):
        if doc and all(isinstance(m, dict) and "type" in m and "@level" in m for m in doc):
            return "stream-array"
        return "array"
    if not isinstance(doc, dict):
        return "scalar"
    keys = doc.keys()
    if "encrypted_data" in keys:
        return "encrypted-state"
    if "format_version" in keys or "plan_format_version" in keys:
        if keys & _PLAN_KEYS:
            return "plan"
        if "provider_schemas" in keys:
            return "provider-schemas"
        if "values" in keys or keys <= {"format_version", "terraform_version"}:
            return "state-show-json"
        return "unknown"
    if "version" in keys and keys & {"lineage", "serial", "resources", "modules"}:
        return "state"
    if "@level" in keys or "@message" in keys:
        return "stream-message"
    if "severity" in keys and "summary" in keys:
        return "diagnostic"
    if keys & _PLAN_KEYS or "configuration" in keys:
        return "plan-without-format-version"
    return "unknown"


def instance_address(module: str | None, mode: str, rtype: str, name: str, index: int | str | None) -> str:
    """A resource instance address as terraform prints it, e.g. module.a.data.x.y["k"]."""
    addr = f"data.{rtype}.{name}" if mode == "data" else f"{rtype}.{name}"
    if isinstance(index, str):
        addr += f"[{json.dumps(index, ensure_ascii=False)}]"
    elif index is not None:
        addr += f"[{index}]"
    return f"{module}.{addr}" if module else addr
