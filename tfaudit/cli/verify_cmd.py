"""tfaudit verify: check a ledger line by line."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, List, Optional

import typer

from tfaudit.cli._ledgers import ReadFormat, format_option, ledger_option
from tfaudit.errors import ExitCode, UsageError

if TYPE_CHECKING:
    from tfaudit.trail.verify import Report


commands = typer.Typer()  # this module's commands, added to the root app by tfaudit.cli.app


@commands.command()
def verify(
    ctx: typer.Context,
    ledger_arg: Optional[str] = typer.Argument(None, metavar="[LEDGER]", help="Same as --ledger."),
    ledger_opt: Optional[str] = ledger_option(repeatable=False),
    public_key: Optional[List[Path]] = typer.Option(None, "--public-key", envvar="TFAUDIT_PUBLIC_KEY", metavar="PUB",
                                                    help="Public key(s) the records must be signed with (repeatable, for "
                                                    "rotated keys); default: the public half of the key tfaudit signs with here."),
    fmt: ReadFormat = format_option(),
    as_json: bool = typer.Option(False, "--json", hidden=True, help="Same as --format json."),
    checkpoints: Optional[str] = typer.Option(None, "--checkpoints", metavar="SRC",
                                              help="Also check the ledger against its signed checkpoints in DIR "
                                              "or s3://BUCKET/PREFIX: truncation, rewritten history, forks."),
    dsse: Optional[Path] = typer.Option(None, "--dsse", metavar="FILE", help="Check the in-toto DSSE envelopes in this file "
                                        "('tfaudit export --format in-toto'); with LEDGER, also that their records are in it."),
    chain_only: bool = typer.Option(False, "--chain-only", help="Check only the sequence and hash chain, fast; "
                                    "signatures and content are NOT checked (no key needed)."),
) -> int:
    """Check every line: JSON, schema, signature, sequence, chain, and that every run finished."""
    from tfaudit.cli._ledgers import chdir_of, default_public_keys, ledger_specs
    from tfaudit.trail.signing import load_verifier
    from tfaudit.trail.verify import verify_ledger

    if ledger_arg and ledger_opt and ledger_arg != ledger_opt:
        raise UsageError("give the ledger once: as LEDGER or as --ledger")
    ledger = ledger_arg or ledger_opt or (None if dsse is not None else ledger_specs(None, chdir=chdir_of(ctx))[0])
    if chain_only:
        if ledger is None or checkpoints or dsse:
            raise UsageError("--chain-only checks a LEDGER alone", hint="drop --checkpoints/--dsse, give a LEDGER")
        return _render_chain_only(ledger, verify_ledger(ledger, (), chain_only=True), as_json or fmt is ReadFormat.JSON)
    verifiers = [load_verifier(p) for p in (public_key or default_public_keys())]
    as_json = as_json or fmt is ReadFormat.JSON
    # checkpoints and DSSE envelopes (issue 6): tfaudit/cli/prove_cmd.py renders them
    from tfaudit.cli.prove_cmd import verify_extras

    report = None
    if ledger is not None:
        from tfaudit.trail.store import open_existing
        from tfaudit.ui.progress import TerminalProgress

        with TerminalProgress("verifying") as progress:
            report = verify_ledger(open_existing(ledger), verifiers, progress=progress)
    shared = ledger is not None and report is not None and report.local_path is None
    if shared and dsse:
        raise UsageError(f"--dsse checks envelopes against a ledger file, not {ledger}",
                         hint="export the store to a file first ('tfaudit export')")
    extras = verify_extras(ledger if shared else Path(ledger) if ledger is not None else None, verifiers,
                           checkpoints, dsse)
    ok = (report is None or report.ok) and extras.ok
    if as_json:
        typer.echo(json.dumps({**(report.as_dict() if report else {}), **extras.data, "ok": ok}, indent=2))
    elif report is not None:
        for r in report.repairs:
            typer.echo(f"{ledger}: {r}")
        for p in report.problems:
            where = f"line {p.line}" if p.line is not None else "ledger"
            typer.echo(f"{ledger}:{p.line or 0}: {p.kind.value}: {p.message}" if p.line else f"{ledger}: {where}: {p.message}")
        if len(report.workspaces) > 1 or report.local_path is None:
            for ws, v in sorted(report.workspaces.items()):
                typer.echo(f"  workspace {ws}: {v['records']} records, {v['runs']} runs, seq {v['first_seq']}.."
                           f"{v['last_seq']}: " + ("OK" if not v["problems"] else f"{v['problems']} problem(s)"))
        if report.ok:
            typer.echo(f"OK: {report.records} records in {report.runs} runs verified "
                       f"(seq 1..{report.last_seq}, head {report.head})")
        else:
            typer.echo(f"FAILED: {len(report.problems)} problem(s) in {report.lines} lines "
                       f"({report.records} records, {report.runs} runs)")
    if not as_json:
        for line in extras.lines:
            typer.echo(line)
    return int(ExitCode.OK if ok else ExitCode.FAILURE)


def _render_chain_only(ledger: str, report: Report, as_json: bool) -> int:
    if as_json:
        typer.echo(json.dumps({**report.as_dict(), "chain_only": True}, indent=2))
        return int(ExitCode.OK if report.ok else ExitCode.FAILURE)
    for p in report.problems:
        typer.echo(f"{ledger}:{p.line}: {p.kind.value}: {p.message}" if p.line else f"{ledger}: ledger: {p.message}")
    if report.ok:
        typer.echo(f"OK (chain only; signatures NOT checked): {report.records} lines chained "
                   f"(seq 1..{report.last_seq}, head {report.head})")
    else:
        typer.echo(f"FAILED: {len(report.problems)} problem(s) in {report.lines} lines (chain only)")
    return int(ExitCode.OK if report.ok else ExitCode.FAILURE)
