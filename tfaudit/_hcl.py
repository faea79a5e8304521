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
    from hcl2.utils import SerializationOptions

    if not path.exists() and not path.is_symlink():
        raise ConfigError(f"config file {path} does not exist", hint="create it, or drop --config/TFAUDIT_CONFIG")
    data = read_regular(path, limit=MAX_CONFIG_BYTES, what="config file", error=ConfigError,
                        hint="a .tfaudit.hcl holds settings and rules; keep it under the limit")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise ConfigError(f"config file {path} is not UTF-8 (undecodable byte at offset {e.start})") from None
    opts = SerializationOptions(strip_string_quotes=True, explicit_blocks=True, with_comments=False)
    try:
        data = hcl2.loads(text, serialization_options=opts)
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
