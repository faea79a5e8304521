"""Values as terraform prints them in the "Outputs:" block at the end of `terraform apply`.

terraform's human output view formats each output with its repl.FormatValue: strings quoted by Go's
strconv.Quote (non-ASCII printable characters as they are), multi-line strings as heredocs, numbers
in full without an exponent, object attributes and map keys quoted, sorted and not aligned, one
element a line with a trailing comma, and the type conversion functions (tolist, toset, tomap,
tostring(null), ...) wherever the value's cty type is not what its literal would be. The type comes
with each output in the `-json` stream ("type", cty's JSON type expression); without it the value's
own shape stands in (object, tuple), which is what terraform's stream gives for most outputs.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from decimal import Decimal
from typing import Any

# Go's unicode.IsSpace, which strings.TrimSpace trims (Python's str.strip would also trim \x1c-\x1f)
_GO_SPACE = "\t\n\v\f\r \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200a" \
            "\u2028\u2029\u202f\u205f\u3000"
_GO_ESCAPES = {"\a": "\\a", "\b": "\\b", "\f": "\\f", "\n": "\\n", "\r": "\\r", "\t": "\\t", "\v": "\\v",
               "\\": "\\\\", '"': '\\"'}


def go_quote(text: str) -> str:
    """Go's strconv.Quote: printable characters as they are (str.isprintable is Go's IsPrint: letters,
    marks, numbers, punctuation, symbols and the ASCII space), the rest escaped."""
    if text.isprintable() and '"' not in text and "\\" not in text:
        return f'"{text}"'
    out = ['"']
    for ch in text:
        escape = _GO_ESCAPES.get(ch)
        if escape is not None:
            out.append(escape)
        elif ch.isprintable():
            out.append(ch)
        elif ord(ch) < 0x80:
            out.append(f"\\x{ord(ch):02x}")
        elif ord(ch) < 0x10000:
            out.append(f"\\u{ord(ch):04x}")
        else:
            out.append(f"\\U{ord(ch):08x}")
    out.append('"')
    return "".join(out)


def _string(text: str, indent: int) -> str:
    """A one-line string quoted; more lines as a heredoc (indented form when nested), with a
    delimiter no line equals."""
    lines = text.split("\n")
    if len(lines) < 2:
        return go_quote(text)
    delimiter = "EOT"
    while any(line.strip(_GO_SPACE) == delimiter for line in lines):
        delimiter += "_"
    pad = " " * indent
    body = "".join(f"\n{pad}{line}" for line in lines)
    return f"{'<<-' if indent > 0 else '<<'}{delimiter}{body}\n{pad}{delimiter}"


def _number(value: int | float | Decimal) -> str:
    """big.Float.Text('f', -1): every digit, no exponent (terraform's stream spells numbers the same
    way, so a Decimal read from it prints back unchanged; a float is shown by its shortest form)."""
    if isinstance(value, int):
        return str(value)
    return format(value if isinstance(value, Decimal) else Decimal(repr(value)), "f")


def friendly_name(ty: Any) -> str:
    """cty's Type.FriendlyName for a JSON type expression."""
    if isinstance(ty, str):
        return ty
    if isinstance(ty, Sequence) and ty and ty[0] in ("list", "set", "map") and len(ty) > 1:
        return f"{ty[0]} of {friendly_name(ty[1])}"
    if isinstance(ty, Sequence) and ty and isinstance(ty[0], str):
        return ty[0]
    return "dynamic"


def _null(ty: Any) -> str:
    kind = ty[0] if isinstance(ty, Sequence) and not isinstance(ty, str) and ty else ty
    if kind in ("string", "number", "bool"):
        return f"to{kind}(null)"
    if kind in ("list", "set", "map") and isinstance(ty, Sequence) and len(ty) > 1:
        return f"to{kind}(null) /* of {friendly_name(ty[1])} */"
    if kind in ("object", "tuple"):
        return f"null /* {kind} */"
    return "null"


def _mapping(value: Mapping[str, Any], types: Mapping[str, Any], indent: int) -> str:
    inner = indent + 2
    pad = " " * inner
    items = "".join(f"\n{pad}{_string(str(k), inner)} = {hcl_value(value[k], types.get(k), inner)}"
                    for k in sorted(value, key=str))
    return "{" + items + (f"\n{' ' * indent}" if items else "") + "}"


def _sequence(value: Sequence[Any], types: Sequence[Any], indent: int) -> str:
    inner = indent + 2
    pad = " " * inner
    items = "".join(f"\n{pad}{hcl_value(v, types[i] if i < len(types) else None, inner)},"
                    for i, v in enumerate(value))
    return "[" + items + (f"\n{' ' * indent}" if items else "") + "]"


def hcl_value(value: Any, ty: Any = None, indent: int = 0) -> str:
    """terraform's repl.FormatValue for a value of the `-json` stream and its cty JSON type
    expression (None: unknown, the value's own shape decides)."""
    kind = ty[0] if isinstance(ty, list) and ty else ty
    if value is None:
        return _null(ty)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float, Decimal)):
        return _number(value)
    if isinstance(value, str):
        return _string(value, indent)
    if isinstance(value, Mapping):
        if kind == "map" and isinstance(ty, list) and len(ty) > 1:
            return f"tomap({_mapping(value, {k: ty[1] for k in value}, indent)})"
        attrs = ty[1] if kind == "object" and isinstance(ty, list) and len(ty) > 1 else None
        return _mapping(value, attrs if isinstance(attrs, Mapping) else {}, indent)
    if isinstance(value, Sequence):
        if kind in ("list", "set") and isinstance(ty, list) and len(ty) > 1:
            return f"to{kind}({_sequence(value, [ty[1]] * len(value), indent)})"
        elems = ty[1] if kind == "tuple" and isinstance(ty, list) and len(ty) > 1 else None
        return _sequence(value, elems if isinstance(elems, list) else [], indent)
    return json.dumps(value, ensure_ascii=False, default=str)


def outputs_text(outputs: Mapping[str, Any]) -> str:
    """The lines under "Outputs:": terraform's OutputHuman for every output, sorted by name."""
    lines = []
    for name, o in sorted(outputs.items()):
        if not isinstance(o, Mapping):
            continue
        if o.get("sensitive"):
            value = "<sensitive>"
        elif "value" in o:
            value = hcl_value(o["value"], o.get("type"))
        else:
            value = "(known after apply)"
        lines.append(f"{name} = {value}")
    return "\n".join(lines).strip(_GO_SPACE) + "\n"


def exact_outputs(line: bytes | str) -> Mapping[str, Any] | None:
    """The outputs of an `outputs` event line with numbers read exactly (terraform's numbers have up to
    512 bits of precision; a float would print 1/3 with 16 digits where terraform prints 155)."""
    try:
        msg = json.loads(line, parse_float=Decimal)
    except ValueError:
        return None
    outputs = msg.get("outputs") if isinstance(msg, dict) else None
    return outputs if isinstance(outputs, Mapping) else None
