"""tfaudit ledger repair: move a torn tail aside with a signed record (see tfaudit.trail.repair)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Optional

import typer

from tfaudit.errors import ExitCode

ledger_app = typer.Typer(help="Look after the ledger file itself.", no_args_is_help=True)


@ledger_app.command()
def repair(
    ctx: typer.Context,
    ledger: Optional[str] = typer.Option(None, "--ledger", envvar="TFAUDIT_LEDGER", help="Ledger file (default: as for apply)."),
    signing_key: Optional[str] = typer.Option(None, "--signing-key", envvar="TFAUDIT_SIGNING_KEY",
                                              help="Key that signs the ledger.repaired record (default: as for apply)."),
    config: Optional[str] = typer.Option(None, "--config", envvar="TFAUDIT_CONFIG", help="Config file (default: .tfaudit.hcl)."),
    as_json: bool = typer.Option(False, "--json", help="Print the result as JSON."),
) -> int:
    """Move a torn last line (a crash mid-write) into LEDGER.torn-START-END and record it, signed."""
    from tfaudit.config import load_config
    from tfaudit.identity.actor import collect_actor
    from tfaudit.run.apply import Console, Invocation, resolve_ledger_path, resolve_signer
    from tfaudit.trail.repair import repair_ledger
    from tfaudit.trail.store import open_store

    obj = ctx.obj if isinstance(ctx.obj, dict) else {}
    work_dir = Path(obj["chdir"]).resolve() if obj.get("chdir") else Path.cwd()
    cfg = load_config(config, work_dir)
    inv = Invocation("ledger", ledger=ledger, config=config, signing_key=signing_key)
    store = open_store(resolve_ledger_path(inv, cfg, os.environ, work_dir), os.environ)
    done = repair_ledger(store, resolve_signer(inv, cfg, os.environ, Console()), collect_actor(cwd=work_dir, env=os.environ),
                         work_dir)
    if as_json:
        typer.echo(json.dumps({"ledger": store.url, "repaired": None if done is None else {
            **done.torn.detail(done.seq - 1), "quarantine": str(done.torn.quarantine), "seq": done.seq}}, indent=2))
    elif done is None:
        typer.echo(f"{store.url}: ends with a complete line; nothing to repair")
    else:
        t = done.torn
        typer.echo(f"{store.url}: moved {t.end - t.start} torn byte(s) (offset {t.start}, {t.sha256}) to {t.quarantine}; "
                   f"recorded as ledger.repaired at line {done.seq}")
    return int(ExitCode.OK)


def register(app: typer.Typer) -> None:
    app.add_typer(ledger_app, name="ledger")
