"""tfaudit recover: finish the runs a killed tfaudit left unfinished."""

from __future__ import annotations

import os
from typing import Optional

import typer

from tfaudit.cli.wrap_cmd import ConfigOpt, KeyOpt, LedgerOpt, TfPathOpt


commands = typer.Typer()  # this module's commands, added to the root app by tfaudit.cli.app


@commands.command()
def recover(ctx: typer.Context, ledger: Optional[str] = LedgerOpt, signing_key: Optional[str] = KeyOpt,
            config: Optional[str] = ConfigOpt, tf_path: Optional[str] = TfPathOpt) -> int:
    """Finish runs whose tfaudit was killed: from terraform's journal and the state (every recorded command does this first too)."""
    from tfaudit.run.recover import recover_ledger
    from tfaudit.run.session import Invocation
    from tfaudit.ui.console import Console

    obj = ctx.obj if isinstance(ctx.obj, dict) else {}
    inv = Invocation(command="recover", chdir=obj.get("chdir"), ledger=ledger, signing_key=signing_key,
                     config=config, tf_path=tf_path)
    console = Console()
    done = recover_ledger(inv, os.environ, console)
    for r in done:
        console.say(f"recovered {r.describe()}")
    if not done:
        console.say("no unfinished runs to recover")
    return 0
