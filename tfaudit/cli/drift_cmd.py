"""tfaudit drift: a refresh-only plan; drift.detected records; exit 2 when something drifted."""

from __future__ import annotations

import os
from typing import Optional

import typer

from tfaudit.cli.wrap_cmd import PASSTHROUGH, TF_ARGS, ConfigOpt, KeyOpt, LedgerOpt, TfPathOpt, invocation, terraform_refuses


commands = typer.Typer()  # this module's commands, added to the root app by tfaudit.cli.app


@commands.command(context_settings=PASSTHROUGH, options_metavar=TF_ARGS)
def drift(ctx: typer.Context, ledger: Optional[str] = LedgerOpt, signing_key: Optional[str] = KeyOpt,
          config: Optional[str] = ConfigOpt, tf_path: Optional[str] = TfPathOpt) -> int:
    """Detect changes made outside terraform (refresh-only plan); exit 2 on drift. Takes plan arguments (-var, -target)."""
    from tfaudit.run.drift import run_drift

    inv = invocation(ctx, "drift", ledger, signing_key, config, tf_path)
    refused = terraform_refuses(inv)
    return refused if refused is not None else run_drift(inv, os.environ)
