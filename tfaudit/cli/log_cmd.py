"""tfaudit log: runs, newest first, one line each."""

from __future__ import annotations

import json
import os
import sys
from typing import List, Optional

import typer

from tfaudit.errors import UsageError


from tfaudit.cli._ledgers import ReadFormat as LogFormat
from tfaudit.cli._ledgers import format_option, ledger_option


_COLOURS = {"succeeded": "green", "planned": "cyan", "partial": "yellow", "failed": "red", "blocked": "red",
            "interrupted": "yellow", "unfinished": "magenta", "drifted": "yellow", "out_of_band": "magenta"}

commands = typer.Typer()  # this module's commands, added to the root app by tfaudit.cli.app


@commands.command("log")
def log_(
    ctx: typer.Context,
    ledgers: Optional[List[str]] = typer.Argument(None, metavar="[LEDGER]...",
                                                  help="Same as --ledger (either form; both add up)."),
    ledger: Optional[List[str]] = ledger_option(),
    since: Optional[str] = typer.Option(None, "--since", help="Only runs at or after this time: 2026-01-31, 2026-01-31T14:00Z, or an age (7d, 12h, 30m)."),
    until: Optional[str] = typer.Option(None, "--until", help="Only runs at or before this time (same forms as --since)."),
    actor: Optional[List[str]] = typer.Option(None, "--actor", help="Only runs by this user (glob; matches user, OS login and git email; repeatable)."),
    workspace: Optional[List[str]] = typer.Option(None, "--workspace", help="Only runs in this workspace (glob; repeatable)."),
    outcome: Optional[List[str]] = typer.Option(None, "--outcome", help="Only runs with this outcome: succeeded, failed, partial, interrupted, blocked, cancelled, planned, unfinished (repeatable, or comma-separated)."),
    limit: Optional[int] = typer.Option(None, "--limit", min=1, help="At most this many runs (the newest)."),
    fmt: LogFormat = format_option(),
    config: Optional[str] = typer.Option(None, "--config", envvar="TFAUDIT_CONFIG", help="Config file naming the ledger."),
) -> int:
    """Runs, newest first: time, actor, workspace, command, outcome, counts."""
    from tfaudit.cli._ledgers import chdir_of, ledger_specs
    from tfaudit.query.indexed import log_runs
    from tfaudit.query import Filters, RunStatus, parse_when
    from tfaudit.ui.progress import TerminalProgress

    outcomes = tuple(o.strip() for item in outcome or [] for o in item.split(",") if o.strip())
    allowed = {o.value for o in RunStatus}
    bad = [o for o in outcomes if o not in allowed]
    if bad:
        raise UsageError(f"--outcome {bad[0]!r} is not an outcome", hint="use one of: " + ", ".join(sorted(allowed)))
    filters = Filters(
        since=parse_when(since, "--since") if since else None,
        until=parse_when(until, "--until") if until else None,
        actors=tuple(actor or ()), workspaces=tuple(workspace or ()), outcomes=outcomes)
    with TerminalProgress("reading ledgers") as progress:
        found = log_runs(ledger_specs([*(ledgers or []), *(ledger or [])], config, chdir_of(ctx)), filters, limit,
                         progress, env=os.environ)
    if fmt is LogFormat.JSON:
        typer.echo(json.dumps([r.as_dict() for r in found], indent=2))
        return 0
    tty = sys.stdout.isatty()  # a header and colour for people; plain lines for pipes and files
    if tty and found:
        typer.secho(f"{'TIME':<21} {'ACTOR':<12} {'WORKSPACE':<10} {'COMMAND':<8} {'OUTCOME':<11} CHANGES  [RUN]",
                    bold=True)
    lines = []
    for r in found:
        counts = ", ".join(f"{v} {k}" for k, v in sorted((r.counts or r.planned).items())) or "no changes"
        extra = f"  {len(r.findings)} finding(s)" if r.findings else ""
        status = f"{r.status:<11}"
        if tty:
            status = typer.style(status, fg=_COLOURS.get(r.status))
        lines.append(f"{r.time[:19].replace('T', ' ')}Z  {r.actor:<12} {r.workspace:<10} {r.command:<8} "
                     f"{status} {counts}{extra}  [{r.run_id[:8]}]")
    if lines:
        typer.echo("\n".join(lines))  # one write: thousands of echo calls cost more than building the lines
    if not found:
        typer.echo("no runs recorded" if not any((since, until, actor, workspace, outcomes)) else "no runs match")
    return 0
