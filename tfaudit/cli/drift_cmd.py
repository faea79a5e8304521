"""tfaudit drift: a refresh-only plan; drift.detected records; exit 2 when something drifted."""

from __future__ import annotations

import json
import os
import sys
from typing import Any, Optional

import typer

from tfaudit.cli._ledgers import ReadFormat, format_option
from tfaudit.cli.wrap_cmd import (
    PASSTHROUGH,
    TF_ARGS,
    ConfigOpt,
    KeyOpt,
    LedgerOpt,
    TfPathOpt,
    invocation,
    terraform_refuses,
)
from tfaudit.schema import RecordType

commands = typer.Typer()  # this module's commands, added to the root app by tfaudit.cli.app


@commands.command(context_settings=PASSTHROUGH, options_metavar=TF_ARGS)
def drift(ctx: typer.Context, ledger: Optional[str] = LedgerOpt, signing_key: Optional[str] = KeyOpt,
          config: Optional[str] = ConfigOpt, tf_path: Optional[str] = TfPathOpt,
          fmt: ReadFormat = format_option()) -> int:
    """Detect changes made outside terraform (refresh-only plan); exit 2 on drift. Takes plan arguments (-var, -target).

    With --format json, terraform's own output goes to stderr and stdout holds the result as JSON."""
    from tfaudit.run.drift import run_drift

    inv = invocation(ctx, "drift", ledger, signing_key, config, tf_path)
    refused = terraform_refuses(inv)
    if refused is not None:
        return refused
    if fmt is ReadFormat.TEXT:
        return run_drift(inv, os.environ)
    from tfaudit.records import now

    started = now()
    sys.stdout.flush()
    saved = os.dup(1)
    os.dup2(2, 1)  # terraform (a child) and the summary write to fd 1: send them to stderr
    try:
        rc = run_drift(inv, os.environ)
    finally:
        sys.stdout.flush()
        os.dup2(saved, 1)
        os.close(saved)
    typer.echo(json.dumps(_result(inv, rc, started), indent=2, default=str))
    return rc


def _result(inv: Any, rc: int, started: str) -> dict[str, Any]:
    """The drift run just recorded: its summary and each drifted resource."""
    from tfaudit.cli._ledgers import ledger_specs
    from tfaudit.query import runs

    (path,) = ledger_specs([inv.ledger] if inv.ledger else None, inv.config, inv.chdir)
    latest = next((r for r in runs([path], env=os.environ) if r.command == "drift" and r.time >= started), None)
    drifted = [rec.get("detail") for rec in (latest.records if latest else []) if rec.get("type") == RecordType.DRIFT_DETECTED]
    return {"exit_code": rc, "drifted": drifted, "run": latest.as_dict() if latest else None, "ledger": str(path)}
