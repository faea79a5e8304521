"""tfaudit report: one self-contained HTML page about the trail."""

from __future__ import annotations

import os
from pathlib import Path
from typing import List, Optional

import typer


commands = typer.Typer()  # this module's commands, added to the root app by tfaudit.cli.app


@commands.command("report")
def report_(
    html_out: Path = typer.Option(..., "--html", help="Write the HTML report to this file."),
    ledger: Optional[List[str]] = typer.Option(None, "--ledger", envvar="TFAUDIT_LEDGER",
                                               help="Ledger file, folder or s3://bucket/prefix (repeatable; default: the config's ledger or .tfaudit/ledger.jsonl)."),
    public_key: Optional[List[Path]] = typer.Option(None, "--public-key", envvar="TFAUDIT_PUBLIC_KEY",
                                                    help="Public key(s) to verify signatures with; without one only the hash chain is checked."),
    since: Optional[str] = typer.Option(None, "--since", help="Only runs at or after this time (date, date-time or an age like 30d)."),
    until: Optional[str] = typer.Option(None, "--until", help="Only runs at or before this time."),
    workspace: Optional[List[str]] = typer.Option(None, "--workspace", help="Only these workspaces (glob; repeatable)."),
    title: str = typer.Option("tfaudit report", "--title", help="The page title."),
    config: Optional[str] = typer.Option(None, "--config", envvar="TFAUDIT_CONFIG", help="Config file naming the ledger."),
) -> int:
    """Timeline of runs by outcome, changes per actor and workspace, riskiest and failed changes, verification status."""
    from tfaudit.cli._ledgers import ledger_specs
    from tfaudit.ui.progress import TerminalProgress
    from tfaudit.query import Filters, parse_when
    from tfaudit.report import html_report, write_html_report
    from tfaudit.trail.signing import load_verifier

    verifiers = [load_verifier(p) for p in public_key or []]
    filters = Filters(since=parse_when(since, "--since") if since else None,
                      until=parse_when(until, "--until") if until else None,
                      workspaces=tuple(workspace or ()))
    with TerminalProgress("reading ledgers") as progress:
        text = html_report(ledger_specs(ledger, config), verifiers, filters=filters, progress=progress,
                           env=os.environ, title=title)
    write_html_report(html_out, text)
    typer.echo(f"wrote {html_out} ({len(text.encode()) // 1024 + 1} KiB)")
    return 0
