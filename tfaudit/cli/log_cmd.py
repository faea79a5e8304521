"""tfaudit log: runs, newest first, one line each."""

from __future__ import annotations

import json
from pathlib import Path
from typing import List, Optional

import typer

from tfaudit.errors import UsageError


def _default_ledgers() -> list[Path]:
    p = Path(".tfaudit") / "ledger.jsonl"
    if not p.exists():
        raise UsageError("no ledger given and none at .tfaudit/ledger.jsonl", hint="pass the ledger path")
    return [p]


def register(app: typer.Typer) -> None:
    @app.command("log")
    def log_(
        ledgers: Optional[List[Path]] = typer.Argument(None, help="Ledger files (default: .tfaudit/ledger.jsonl)."),
        fmt: str = typer.Option("text", "--format", help="text or json."),
    ) -> int:
        """Runs, newest first: time, actor, workspace, command, outcome, counts."""
        from tfaudit.query import runs

        if fmt not in ("text", "json"):
            raise UsageError(f"--format must be text or json, not {fmt!r}")
        found = runs(ledgers or _default_ledgers())
        if fmt == "json":
            typer.echo(json.dumps([r.as_dict() for r in found], indent=2))
            return 0
        for r in found:
            counts = ", ".join(f"{v} {k}" for k, v in sorted((r.counts or r.planned).items())) or "no changes"
            typer.echo(f"{r.time[:19].replace('T', ' ')}Z  {r.actor:<12} {r.workspace:<10} {r.command:<8} "
                       f"{r.status:<11} {counts}  [{r.run_id[:8]}]")
        if not found:
            typer.echo("no runs recorded")
        return 0
