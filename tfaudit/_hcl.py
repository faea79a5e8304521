"""The only importer of python-hcl2, with its serialization options pinned.

python-hcl2 v8 keeps string quotes and block markers unless told otherwise; we strip
quotes and keep explicit block markers so a block (`ledger { ... }`) and an object
attribute (`object_lock = { ... }`) stay distinguishable.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tfaudit._bounded import MAX_CONFIG_BYTES, read_regular
from tfaudit.errors import ConfigError

BLOCK_MARKER = "__is_block__"


def load_hcl(path: Path) -> dict[str, Any]:
    import hcl2

    if not path.exists() and not path.is_symlink():
        raise ConfigError(f"config file {path} does not exist", hint="create it, or drop --config/TFAUDIT_CONFIG")
    raw = read_regular(path, limit=MAX_CONFIG_BYTES, what="config file", error=ConfigError,
                        hint="a .tfaudit.hcl holds settings and rules; keep it under the limit")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise ConfigError(f"config file {path} is not UTF-8 (undecodable byte at offset {e.start})") from None
    try:
        data = hcl2.loads(text, serialization_options=_options())
    except Exception as e:  # noqa: BLE001 - lark raises many types; all mean "not valid HCL"
        line = getattr(e, "line", None)
        col = getattr(e, "column", None)
        where = f" at line {line}, column {col}" if line else ""
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise ConfigError(f"{path}: not valid HCL{where}: {first[:160]}", hint="fix the syntax and run 'tfaudit config validate'") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected blocks and attributes at the top level")
    return data


def is_block(value: Any) -> bool:
    return isinstance(value, dict) and value.get(BLOCK_MARKER) is True


def strip_marker(block: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in block.items() if k != BLOCK_MARKER}


def top_level_blocks(path: Path) -> list[tuple[str, tuple[str, ...], int]]:
    """(block type, labels, first line) of every top-level block of a `.tf` file, e.g.
    ("resource", ("aws_s3_bucket", "logs"), 12). Values are not evaluated; a file that is
    not valid HCL yields nothing (terraform itself reports it)."""
    import hcl2
    from lark import Token, Tree

    try:
        tree = hcl2.parses_to_tree(path.read_text("utf-8"))
    except Exception:  # noqa: BLE001 - lark raises many types; all mean "no locations from this file"
        return []
    out: list[tuple[str, tuple[str, ...], int]] = []
    for start in tree.children:
        body = start if isinstance(start, Tree) and start.data == "body" else None
        for node in (body.children if body is not None else []):
            if not (isinstance(node, Tree) and node.data == "block") or node.meta.empty:
                continue
            words: list[str] = []
            for child in node.children:
                if isinstance(child, Token):
                    break  # the opening brace: labels come before it
                if isinstance(child, Tree):
                    words.append("".join(str(t) for t in child.scan_values(
                        lambda v: isinstance(v, Token) and v.type in ("NAME", "STRING_CHARS"))))
            if words:
                out.append((words[0], tuple(words[1:]), node.meta.line))
    return out


def module_source(path: Path, name: str) -> str | None:
    """The literal `source` of `module "name"` in a `.tf` file, or None."""
    import hcl2

    try:
        data = hcl2.loads(path.read_text("utf-8"), serialization_options=_options())
    except Exception:  # noqa: BLE001 - not valid HCL: no source from this file
        return None
    for entry in data.get("module") or [] if isinstance(data, dict) else []:
        block = entry.get(name) if isinstance(entry, dict) else None
        if isinstance(block, dict) and isinstance(block.get("source"), str):
            return str(block["source"])
    return None


def _options() -> Any:
    from hcl2.utils import SerializationOptions

    return SerializationOptions(strip_string_quotes=True, explicit_blocks=True, with_comments=False)
