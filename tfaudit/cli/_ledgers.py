"""Which ledgers a reading command looks at when none are given (tfaudit.run.session decides)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import click

from tfaudit.errors import UsageError


def ledger_specs(given: Sequence[str | Path] | None, config: str | None = None) -> list[str]:
    """The given ledgers, else the one `tfaudit apply` would write here (TFAUDIT_LEDGER, the config's
    ledger.path, else .tfaudit/ledger.jsonl in the working directory, -chdir included)."""
    if given:
        return [str(g) for g in given]
    from tfaudit.run.session import resolve_ledger

    ctx = click.get_current_context(silent=True)
    obj = ctx.find_root().obj if ctx is not None else None
    chdir = obj.get("chdir") if isinstance(obj, dict) else None
    store = resolve_ledger(None, chdir=chdir, config_path=config, env=os.environ)
    if not store.exists() and not os.environ.get("TFAUDIT_LEDGER"):
        raise UsageError(f"no ledger given and none at {store.url}",
                         hint="pass the ledger path (or set TFAUDIT_LEDGER)")
    return [store.url]
