"""tfaudit verify: check a ledger line by line."""

from __future__ import annotations

import json
from pathlib import Path
from typing import List, Optional

import typer

from tfaudit.errors import ExitCode, UsageError
from tfaudit.signing import load_verifier
from tfaudit.verify import verify_ledger


def register(app: typer.Typer) -> None:
    @app.command()
    def verify(
        ledger: Path = typer.Argument(..., help="Ledger file to check."),
        public_key: Optional[List[Path]] = typer.Option(None, "--public-key", envvar="TFAUDIT_PUBLIC_KEY",
                                                        help="Public key(s) the records must be signed with (repeatable, for rotated keys)."),
        as_json: bool = typer.Option(False, "--json", help="Print the report as JSON."),
    ) -> int:
        """Check every line: JSON, schema, signature, sequence, chain, and that every run finished."""
        if not public_key:
            raise UsageError("no public key given", hint="pass --public-key PUB (the .pub file from 'tfaudit keygen')")
        verifiers = [load_verifier(p) for p in public_key]
        report = verify_ledger(ledger, verifiers)
        if as_json:
            typer.echo(json.dumps(report.as_dict(), indent=2))
        else:
            for p in report.problems:
                where = f"line {p.line}" if p.line is not None else "ledger"
                typer.echo(f"{ledger}:{p.line or 0}: {p.kind.value}: {p.message}" if p.line else f"{ledger}: {where}: {p.message}")
            if report.ok:
                typer.echo(f"OK: {report.records} records in {report.runs} runs verified "
                           f"(seq 1..{report.last_seq}, head {report.head})")
            else:
                typer.echo(f"FAILED: {len(report.problems)} problem(s) in {report.lines} lines "
                           f"({report.records} records, {report.runs} runs)")
        return int(ExitCode.OK if report.ok else ExitCode.FAILURE)
