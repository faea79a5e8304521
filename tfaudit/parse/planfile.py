"""A saved plan file read directly, for the one case where that is enough: nothing changes.

`terraform show -json PLANFILE` is a process that loads the configuration, the providers'
schemas and the state to print the plan as JSON: about a fifth of a 1,000-resource run in
which nothing changes (the everyday CI run), more with a provider such as AWS to start.
When the plan changes nothing, what tfaudit takes from that JSON is a handful of facts the
plan file states itself, in its `tfplan` member (protocol buffers, terraform's internal
format, `internal/plans/planproto/planfile.proto`):

- the plan is complete, not errored, not applyable, in the normal mode, with no drift,
  deferred change, check result, target or forced replacement;
- every resource instance change is a no-op of the current object at its own address (no
  import, move, forget or deposed object) and marks nothing sensitive;
- every output change is a no-op and not sensitive;
- the terraform that wrote it is one whose JSON this reading is pinned to (1.11.x).

tfaudit must not miss a secret the JSON would have taught it (its redactor scrubs them from
what it prints: here, the outputs). The JSON marks sensitive what the plan file marks (ruled
out above), the values of root variables declared sensitive, which only the configuration
says, and the attributes a provider's schema declares sensitive, which only the provider says.
A value of either kind can only reach a root output through the word `sensitive` in the
configuration (`sensitive = true`, `sensitive()`, `nonsensitive()`); otherwise terraform
refuses the plan. So no file of the plan's snapshot of the configuration, any module's, may
contain that word at all.

Anything else, or anything this reader does not know (a field number, a version, a wire
type, a malformed byte), answers None: tfaudit then asks terraform, as it always did. The
reader is a few lines of the protobuf wire format rather than the `protobuf` package, which
would need terraform's schema compiled in and costs more to import than this whole read.
"""

from __future__ import annotations

import zipfile
from collections.abc import Iterator
from pathlib import Path, PurePosixPath

from tfaudit.parse.plan import OutputChange, Plan

# `terraform show -json`'s format_version, by the terraform version that wrote the plan
_JSON_FORMAT = {"1.11.": "1.2"}
_PLAN_VERSION = 3  # tfplan's own format version (planfile.proto `version`)

# Plan: the fields read, and those allowed only when absent (or empty/false)
_READ = {1, 2, 3, 4, 13, 14, 15, 17, 20, 21, 22, 25, 26}  # 2 variables, 13 backend, 15 relevant attrs, 22 fn results
_ABSENT = {5, 16, 18, 19, 27, 28}  # targets, forced replacements, drift, checks, deferred, apply-time variables
_RESOURCE_CHANGE = {7: "deposed", 8: "provider", 9: "change", 10: "private", 11: "required_replace",
                    12: "action_reason", 13: "addr", 14: "prev_run_addr"}
_CHANGE = {1: "action", 2: "values", 3: "before_sensitive", 4: "after_sensitive", 5: "importing",
           6: "generated_config", 7: "before_identity", 8: "after_identity"}


class _Unsure(Exception):
    """Something this reader does not know for certain: let terraform say it."""


def _varint(buf: bytes, i: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if i >= len(buf) or shift > 63:
            raise _Unsure("truncated varint")
        byte = buf[i]
        i += 1
        result |= (byte & 0x7F) << shift
        shift += 7
        if byte < 0x80:
            return result, i


def _fields(buf: bytes) -> Iterator[tuple[int, int | bytes]]:
    """(field number, value) of one message: an int for a varint, bytes for a length-delimited field."""
    i = 0
    while i < len(buf):
        key, i = _varint(buf, i)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, i = _varint(buf, i)
            yield number, value
        elif wire == 2:
            size, i = _varint(buf, i)
            if i + size > len(buf):
                raise _Unsure("truncated field")
            yield number, buf[i:i + size]
            i += size
        else:  # no field read here is fixed-width or a group
            raise _Unsure(f"wire type {wire}")


def _text(value: int | bytes) -> str:
    if not isinstance(value, bytes):
        raise _Unsure("a string field holds a number")
    return value.decode("utf-8")


def _no_op(change: int | bytes, allowed: set[str]) -> None:
    """A Change that is a no-op and marks nothing sensitive (only fields named in `allowed` may be set)."""
    if not isinstance(change, bytes):
        raise _Unsure("change")
    for number, value in _fields(change):
        name = _CHANGE.get(number)
        if name is None or (name not in allowed and value not in (0, b"")):
            raise _Unsure(f"change field {number}")


def _resource_change(buf: int | bytes) -> None:
    if not isinstance(buf, bytes):
        raise _Unsure("resource change")
    addr = prev = ""
    seen_change = False
    for number, value in _fields(buf):
        name = _RESOURCE_CHANGE.get(number)
        if name == "addr":
            addr = _text(value)
        elif name == "prev_run_addr":
            prev = _text(value)
        elif name == "change":
            _no_op(value, {"values", "before_identity", "after_identity"})
            seen_change = True
        elif name in ("provider", "private", "action_reason") or (name is not None and value in (0, b"")):
            continue
        else:  # deposed, required_replace, or a field this reader does not know
            raise _Unsure(f"resource change field {number}")
    if not addr or (prev and prev != addr):
        raise _Unsure("a moved or unnamed resource instance")
    if not seen_change:
        raise _Unsure("a resource instance without a change")


def _output_change(buf: int | bytes) -> OutputChange:
    if not isinstance(buf, bytes):
        raise _Unsure("output change")
    name = None
    for number, value in _fields(buf):
        if number == 1:
            name = _text(value)
        elif number == 2:
            _no_op(value, {"values"})
        elif not (number == 3 and value == 0):  # 3: sensitive
            raise _Unsure(f"output change field {number}")
    if name is None:
        raise _Unsure("an output change without a name")
    return OutputChange(name, ("no-op",), False)


def _variable_name(entry: int | bytes) -> str:
    if not isinstance(entry, bytes):
        raise _Unsure("variable")
    for number, value in _fields(entry):
        if number == 1:
            return _text(value)
    raise _Unsure("a variable without a name")


def _config_mentions_sensitive(z: zipfile.ZipFile) -> bool:
    """Whether any file of the plan's configuration snapshot (every module's, under tfconfig/m-KEY/;
    the root module's key is empty) says `sensitive`. True when the snapshot holds no root module
    file: then a sensitive variable cannot be ruled out."""
    files = [n for n in z.namelist() if n.startswith("tfconfig/m-") and not n.endswith("/")]
    if not any(PurePosixPath(n).parent == PurePosixPath("tfconfig/m-") for n in files):
        return True
    return any(b"sensitive" in z.read(name) for name in files)


def unchanged_plan(path: Path) -> Plan | None:
    """The plan in the saved plan file at `path` when it surely changes nothing and marks nothing
    sensitive (the module's doc says what that takes), as `parse_plan` of its JSON would give it
    for tfaudit's records; None otherwise: ask terraform."""
    try:
        with zipfile.ZipFile(path) as z:
            plan = _read(z.read("tfplan"))
            if plan is None or _config_mentions_sensitive(z):
                return None
            return plan
    except (OSError, KeyError, zipfile.BadZipFile, UnicodeDecodeError, _Unsure):
        return None


def _read(tfplan: bytes) -> Plan | None:
    flags = {17: 0, 20: 0, 25: 0, 26: 0}  # ui_mode, errored, applyable, complete
    version = tool = timestamp = None
    variables: set[str] = set()
    outputs: list[OutputChange] = []
    for number, value in _fields(tfplan):
        if number in _ABSENT or number not in _READ:
            raise _Unsure(f"plan field {number}")
        if number == 1:
            version = value
        elif number in flags:
            flags[number] = value if isinstance(value, int) else -1
        elif number == 2:
            variables.add(_variable_name(value))
        elif number == 3:
            _resource_change(value)
        elif number == 4:
            outputs.append(_output_change(value))
        elif number == 14:
            tool = _text(value)
        elif number == 21:
            timestamp = _text(value)
    json_format = next((f for prefix, f in _JSON_FORMAT.items() if tool and tool.startswith(prefix)), None)
    if version != _PLAN_VERSION or json_format is None or flags != {17: 0, 20: 0, 25: 0, 26: 1}:
        return None
    return Plan(format_version=json_format, terraform_version=tool, resource_changes=(), resource_drift=(),
                output_changes=tuple(sorted(outputs, key=lambda o: o.name)), errored=False, applyable=False,
                complete=True, timestamp=timestamp, sensitive_variables=frozenset(),
                variable_names=frozenset(variables), raw={})
