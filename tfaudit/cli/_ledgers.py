"""Which ledgers a reading command looks at when none are given."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from tfaudit.errors import UsageError


def ledger_specs(given: Sequence[str | Path] | None, config: str | None = None) -> list[str]:
    """The given ledgers, else TFAUDIT_LEDGER, else the config's ledger.path, else .tfaudit/ledger.jsonl."""
    if given:
        return [str(g) for g in given]
    env = os.environ.get("TFAUDIT_LEDGER")
    if env:
        return [env]
    from tfaudit.config import load_config

    cfg = load_config(config or os.environ.get("TFAUDIT_CONFIG"), Path.cwd())
    if cfg.ledger.path is not None:
        return [str(cfg.ledger.path)]
    default = Path(".tfaudit") / "ledger.jsonl"
    if not default.exists():
        raise UsageError("no ledger given and none at .tfaudit/ledger.jsonl",
                         hint="pass the ledger path (or set TFAUDIT_LEDGER)")
    return [str(default)]
