"""tfaudit ci run: a CI step around a tfaudit command, with a Markdown summary and step outputs."""

from __future__ import annotations

import os
import shlex
import sys
from enum import Enum
from pathlib import Path
from typing import List, Optional

import typer

from tfaudit.errors import UsageError

ci_app = typer.Typer(help="Run tfaudit as a CI step (used by the GitHub action and the GitLab template).",
                     no_args_is_help=True)


class OutputsFormat(str, Enum):
    GITHUB = "github"
    DOTENV = "dotenv"


def _inner_ledger(args: list[str]) -> Path:
    """The ledger the wrapped command will write: its --ledger, else the runner's own resolution."""
    from tfaudit.run.session import resolve_ledger
    from tfaudit.terraform.binary import extract_chdir

    chdir, rest = extract_chdir(args)
    opts: dict[str, str | None] = {"--ledger": None, "--config": None}
    for i, a in enumerate(rest):
        for name in opts:
            if a == name and i + 1 < len(rest):
                opts[name] = rest[i + 1]
            elif a.startswith(name + "="):
                opts[name] = a.split("=", 1)[1]
    store = resolve_ledger(opts["--ledger"], chdir=chdir, config_path=opts["--config"], env=os.environ)
    return store.local_path or Path(store.url)


@ci_app.command("run", context_settings={"ignore_unknown_options": True, "allow_extra_args": True,
                                         "help_option_names": ["--help"]})
def run(
    args: Optional[List[str]] = typer.Argument(None, help="The tfaudit command and its arguments, after --."),
    command: Optional[str] = typer.Option(None, "--command", envvar="TFAUDIT_COMMAND",
                                          help="The tfaudit command as one string (split like a shell, never run by one)."),
    summary: Optional[Path] = typer.Option(None, "--summary", envvar="GITHUB_STEP_SUMMARY",
                                           help="Append the Markdown summary here (default: $GITHUB_STEP_SUMMARY)."),
    outputs: Optional[Path] = typer.Option(None, "--outputs", envvar="GITHUB_OUTPUT",
                                           help="Append step outputs here (default: $GITHUB_OUTPUT)."),
    outputs_format: OutputsFormat = typer.Option(OutputsFormat.GITHUB, "--outputs-format",
                                                 help="github (key=value) or dotenv (TFAUDIT_KEY=value, for GitLab reports)."),
) -> int:
    """Run a tfaudit command; then summarise the records it wrote (Markdown) and set outputs: outcome, exit-code, records, changes, succeeded, failed, findings, run-id, plan-sha256."""
    from tfaudit.terraform import proc as _proc
    from tfaudit.report import markdown, step

    argv = list(args or [])
    if command:
        if argv:
            raise UsageError("give the command either with --command or after --, not both")
        try:
            argv = shlex.split(command)
        except ValueError as e:
            raise UsageError(f"--command cannot be split: {e}", hint="check its quotes") from None
    if argv and argv[0] == "tfaudit":
        argv = argv[1:]
    if not argv:
        raise UsageError("no tfaudit command given", hint="e.g. tfaudit ci run --command 'plan -out=plan.tfplan'")
    if argv[0] == "ci":
        raise UsageError("tfaudit ci run cannot run itself")
    ledger = _inner_ledger(argv)
    offset = step.ledger_size(ledger)
    with _proc.forwarding_signals() as fwd:
        rc = _proc.run_streaming([sys.executable, "-m", "tfaudit", *argv], on_line=None, env=os.environ, forwarder=fwd)
    result = step.summarise(rc, step.records_after(ledger, offset), str(ledger))
    text = markdown.step_markdown(result.runs, str(ledger), argv, rc, result.seqs)
    if summary:
        step.append_text(summary, text)
    else:
        sys.stderr.write(text)
    outs = result.outputs()
    if outputs:
        step.write_outputs(outputs, outs, outputs_format.value)
    sys.stderr.write("tfaudit ci: " + " ".join(f"{k}={v}" for k, v in outs.items() if v) + "\n")
    return rc


def register(app: typer.Typer) -> None:
    app.add_typer(ci_app, name="ci")
