"""tfaudit report: one self-contained HTML page about the trail."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, List, Optional

import typer

from tfaudit.cli._ledgers import ReadFormat, format_option, ledger_option


commands = typer.Typer()  # this module's commands, added to the root app by tfaudit.cli.app


@commands.command("report")
def report_(
    ctx: typer.Context,
    html_out: Optional[Path] = typer.Option(None, "--html", metavar="FILE", help="Write the HTML report to this file."),
    ledger: Optional[List[str]] = ledger_option(),
    fmt: ReadFormat = format_option(),
    public_key: Optional[List[Path]] = typer.Option(None, "--public-key", envvar="TFAUDIT_PUBLIC_KEY",
                                                    help="Public key(s) to verify signatures with; without one only the hash chain is checked."),
    since: Optional[str] = typer.Option(None, "--since", help="Only runs at or after this time (date, date-time or an age like 30d)."),
    until: Optional[str] = typer.Option(None, "--until", help="Only runs at or before this time."),
    workspace: Optional[List[str]] = typer.Option(None, "--workspace", help="Only these workspaces (glob; repeatable)."),
    title: str = typer.Option("tfaudit report", "--title", help="The page title."),
    config: Optional[str] = typer.Option(None, "--config", envvar="TFAUDIT_CONFIG", help="Config file naming the ledger."),
) -> int:
    """Runs by outcome, changes per actor and workspace, riskiest, failed and out-of-band changes, verification status
    (--html FILE: one self-contained page; --format json: the same data)."""
    from tfaudit.cli._ledgers import chdir_of, ledger_specs
    from tfaudit.ui.progress import TerminalProgress
    from tfaudit.query import Filters, parse_when
    from tfaudit.report import build_report, html, write_html_report
    from tfaudit.trail.signing import load_verifier

    verifiers = [load_verifier(p) for p in public_key or []]
    filters = Filters(since=parse_when(since, "--since") if since else None,
                      until=parse_when(until, "--until") if until else None,
                      workspaces=tuple(workspace or ()))
    with TerminalProgress("reading ledgers") as progress:
        content, statuses = build_report(ledger_specs(ledger, config, chdir_of(ctx)), verifiers, filters=filters, progress=progress,
                                         env=os.environ)
    if html_out is not None:
        text = html.render(content, statuses, title=title)
        write_html_report(html_out, text)
        if fmt is ReadFormat.TEXT:
            typer.echo(f"wrote {html_out} ({len(text.encode()) // 1024 + 1} KiB)")
    if fmt is ReadFormat.JSON:
        typer.echo(json.dumps({**content.as_dict(), "verification": [vars(s) for s in statuses]}, indent=2, default=str))
    elif html_out is None:
        _text(content, statuses)
    return 0


def _text(content: Any, statuses: Any) -> None:
    """The report in a terminal: verification (and what it cannot see), out-of-band changes, failures."""
    for s in statuses:
        typer.echo(f"{s.source}: {s.state}: {s.summary}")
    typer.echo(f"{len(content.runs)} runs, {sum(len(r.resources) for r in content.runs)} resource changes; "
               + (", ".join(f"{n} {k}" for k, n in sorted(content.outcomes.items())) or "no runs"))
    typer.echo(f"changed outside tfaudit: {len(content.out_of_band) or 'none seen'}"
               + ("" if content.out_of_band else " (seen only once a later tfaudit run reads the state)"))
    for e in content.out_of_band:
        parts = [f"{k} {', '.join(v)}" for k, v in (("changed", e.changed), ("deleted", e.removed),
                                                   ("created", e.added)) if v]
        typer.echo(f"  {e.time[:19].replace('T', ' ')}Z  {e.workspace}: " + ("; ".join(parts) or "; ".join(e.reasons)))
    for run, res in content.failed[:20]:
        typer.echo(f"  failed: {res.get('address')} in run {run.run_id[:8]} ({run.time[:19]})")
