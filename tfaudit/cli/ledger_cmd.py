"""tfaudit ledger init|import|repair: set up a shared ledger store, move a file ledger into one, move a torn tail aside."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Optional

import typer

from tfaudit.errors import ExitCode

commands = typer.Typer()  # this module's commands, added to the root app by tfaudit.cli.app
ledger_app = typer.Typer(name="ledger", help="Set up a shared ledger store (S3, PostgreSQL), import file ledgers, repair a torn tail.",
                         no_args_is_help=True, rich_markup_mode=None)


@ledger_app.command("init")
def init(url: str = typer.Argument(..., metavar="URL", help="s3://BUCKET/PREFIX or postgresql://...")) -> None:
    """Create or migrate the store's schema (PostgreSQL); check that an S3 bucket answers."""
    from tfaudit.trail.store import open_store
    from tfaudit.trail.transfer import init_store

    typer.echo(init_store(open_store(url, os.environ)))

@ledger_app.command("import")
def import_(file: Path = typer.Argument(..., metavar="FILE", help="The file ledger to import."),
            url: str = typer.Argument(..., metavar="URL", help="An empty store: s3://BUCKET/PREFIX or postgresql://...")) -> None:
    """Put a file ledger's records, exactly as signed, into an empty store; later runs continue its chain."""
    from tfaudit.trail.store import open_store
    from tfaudit.trail.transfer import import_file

    done = import_file(file, open_store(url, os.environ))
    typer.echo(f"imported {done.records} records from {done.source} into {done.target} (head {done.head}); "
               f"check with 'tfaudit verify {done.target} --public-key PUB'")


@ledger_app.command("repair")
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
    from tfaudit.run.session import Invocation, resolve_ledger, resolve_signer
    from tfaudit.trail.repair import repair_ledger
    from tfaudit.ui.console import Console

    obj = ctx.obj if isinstance(ctx.obj, dict) else {}
    work_dir = Path(obj["chdir"]).resolve() if obj.get("chdir") else Path.cwd()
    cfg = load_config(config, work_dir)
    inv = Invocation("ledger", ledger=ledger, config=config, signing_key=signing_key)
    store = resolve_ledger(ledger, chdir=obj.get("chdir"), config_path=config, env=os.environ, config=cfg)
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


commands.add_typer(ledger_app)
