"""tfaudit ledger init|import: set up a shared ledger store, move a file ledger into one."""

from __future__ import annotations

import os
from pathlib import Path

import typer

commands = typer.Typer()  # this module's commands, added to the root app by tfaudit.cli.app
ledger_app = typer.Typer(name="ledger", help="Set up a shared ledger store (S3, PostgreSQL) and import file ledgers.",
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

commands.add_typer(ledger_app)
