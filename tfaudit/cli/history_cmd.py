"""tfaudit history: every recorded change to one resource (or a glob of them)."""

from __future__ import annotations

import json
import os
from collections import Counter
from typing import Any, List, Optional

import typer


from tfaudit.cli._ledgers import ReadFormat as HistoryFormat
from tfaudit.cli._ledgers import format_option, ledger_option

_FINE = ("succeeded", "not_attempted", "planned")  # statuses shown as they are; the others shout


def _short(value: Any, limit: int = 100) -> str:
    text = json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)
    return text if len(text) <= limit else text[: limit - 3] + "..."


commands = typer.Typer()  # this module's commands, added to the root app by tfaudit.cli.app


@commands.command("history")
def history_(
    ctx: typer.Context,
    address: str = typer.Argument(..., help="Resource address, e.g. aws_s3_bucket.logs or 'module.env[\"prod\"].*' (* and ? are "
                                  "wildcards; without an index, every instance, as in terraform)."),
    ledger: Optional[List[str]] = ledger_option(),
    fmt: HistoryFormat = format_option(),
    values: bool = typer.Option(False, "--values", help="Also show the changed attributes' values before and after (redacted as recorded)."),
    config: Optional[str] = typer.Option(None, "--config", envvar="TFAUDIT_CONFIG", help="Config file naming the ledger."),
) -> int:
    """Who changed a resource, when, which action, what changed, and whether it worked (newest first; moves followed)."""
    from tfaudit.cli._ledgers import chdir_of, ledger_specs
    from tfaudit.ui.progress import TerminalProgress
    from tfaudit.query.indexed import resource_history

    with TerminalProgress("reading ledgers") as progress:
        changes = resource_history(address, ledger_specs(ledger, config, chdir_of(ctx)), progress, env=os.environ,
                                   run_status=fmt is HistoryFormat.JSON)  # text does not show it
    if fmt is HistoryFormat.JSON:
        typer.echo(json.dumps([c.as_dict() for c in changes], indent=2, default=str))
        return 0
    if not changes:
        typer.echo(f"no recorded changes to {address}")
        return 0
    shown: list[str] = []
    say = shown.append  # one write at the end: thousands of echo calls cost more than the lines
    for c in changes:
        if c.out_of_band:
            say(f"{c.time[:19].replace('T', ' ')}Z  OUTSIDE TFAUDIT in {c.workspace}: {c.action} {c.address}  "
                f"out_of_band  [seen by run {c.run_id[:8]}; who and which attributes: not recorded]")
            continue
        what = ", ".join(c.changed_paths[:6]) + (f" (+{len(c.changed_paths) - 6} more)" if len(c.changed_paths) > 6 else "")
        ci = c.actor_block.get("ci") if isinstance(c.actor_block.get("ci"), dict) else None
        via = f" via {ci.get('provider')}" if ci else ""
        line = (f"{c.time[:19].replace('T', ' ')}Z  {c.actor}{via}  {c.command} in {c.workspace}: "
                f"{c.action} {c.address}  {c.status if c.status in _FINE else c.status.upper()}")
        if c.previous_address and c.previous_address != c.address:
            line += f"  (moved from {c.previous_address})"
        say(line + f"  [run {c.run_id[:8]}]")
        if what:
            say(f"    changed: {what}")
        if c.phases and (len(c.phases) > 1 or c.status not in _FINE):
            say("    phases: " + ", ".join(f"{p.get('action')} {p.get('status')}" for p in c.phases))
        if c.error:
            say(f"    error: {c.error.get('summary', '')}" +
                (f": {str(c.error.get('detail', '')).splitlines()[0][:200]}" if c.error.get("detail") else ""))
        if values:
            for key in sorted(set(c.before or {}) | set(c.after or {})):
                say(f"    {key}: {_short((c.before or {}).get(key))} -> {_short((c.after or {}).get(key))}"
                    + (f"  (planned {_short(c.planned_after[key])})" if key in c.planned_after else ""))
    typer.echo("\n".join(shown))
    n_runs = len({c.run_id for c in changes if not c.out_of_band})
    oob = sum(c.out_of_band for c in changes)
    typer.echo(f"{len(changes) - oob} change(s) in {n_runs} run(s); "
               f"{sum(c.status == 'failed' for c in changes)} failed"
               + "".join(f", {n} {s}" for s, n in sorted(Counter(c.status for c in changes if not c.out_of_band).items())
                         if s not in (*_FINE, "failed"))
               + (f"; {oob} made outside tfaudit" if oob else ""))
    return 0
