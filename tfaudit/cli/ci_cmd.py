"""tfaudit ci run: a CI step around a tfaudit command, with a Markdown summary and step outputs."""

from __future__ import annotations

import os
import shlex
import sys
from enum import Enum
from pathlib import Path
from typing import Any, List, Optional

import typer

from tfaudit.errors import UsageError

ci_app = typer.Typer(help="Run tfaudit as a CI step (used by the GitHub action and the GitLab template).",
                     no_args_is_help=True)


class OutputsFormat(str, Enum):
    GITHUB = "github"
    DOTENV = "dotenv"


def _inner_ledger(args: list[str]) -> str:
    """The ledger the wrapped command will write: its --ledger, else the runner's own resolution."""
    from tfaudit.run.session import resolve_ledger
    from tfaudit.terraform.args import extract_chdir, own_option

    chdir, rest = extract_chdir(args)
    opts = {name: own_option(rest, name) for name in ("--ledger", "--config")}
    store = resolve_ledger(opts["--ledger"], chdir=chdir, config_path=opts["--config"], env=os.environ)
    return str(store.local_path or store.url)  # a path, or a store URL kept whole


@ci_app.command("run", context_settings={"ignore_unknown_options": True, "allow_extra_args": True,
                                         "help_option_names": ["--help"]})
def run(
    ctx: typer.Context,
    args: Optional[List[str]] = typer.Argument(None, help="The tfaudit command and its arguments, after --."),
    command: Optional[str] = typer.Option(None, "--command", envvar="TFAUDIT_COMMAND",
                                          help="The tfaudit command as one string (split like a shell, never run by one)."),
    summary: Optional[Path] = typer.Option(None, "--summary", envvar="GITHUB_STEP_SUMMARY",
                                           help="Append the Markdown summary here (default: $GITHUB_STEP_SUMMARY)."),
    outputs: Optional[Path] = typer.Option(None, "--outputs", envvar="GITHUB_OUTPUT",
                                           help="Append step outputs here (default: $GITHUB_OUTPUT)."),
    outputs_format: OutputsFormat = typer.Option(OutputsFormat.GITHUB, "--outputs-format",
                                                 help="github (key=value) or dotenv (TFAUDIT_KEY=value, for GitLab reports)."),
    comment: bool = typer.Option(False, "--comment", envvar="TFAUDIT_COMMENT",
                                 help="Post or update the pull/merge request comment for each run (see 'tfaudit ci comment')."),
    terraform_report: Optional[Path] = typer.Option(None, "--terraform-report", envvar="TFAUDIT_TERRAFORM_REPORT",
                                                    metavar="FILE", help="Write GitLab's Terraform report (create, "
                                                    "update, delete counts) of the plan here."),
) -> int:
    """Run a tfaudit command; then summarise the records it wrote (Markdown) and set outputs: outcome, exit-code, records, changes, succeeded, failed, findings, run-id, plan-sha256."""
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
    offset = step.ledger_mark(ledger)
    # the command runs in this process, through the same entry point (and error handler) as `tfaudit ...`
    rc = int(ctx.obj["run"](argv))
    result = step.summarise(rc, step.records_after(ledger, offset), str(ledger))
    text = markdown.step_markdown(result.runs, str(ledger), argv, rc, result.seqs)
    if summary:
        step.append_text(summary, text)
    else:
        sys.stderr.write(text)
    outs = result.outputs()
    if terraform_report and result.runs:
        from tfaudit.ci import terraform_report as tf_report

        tf_report.write(terraform_report, result.runs[-1].planned)
    if comment:
        outs["comment"] = _comment_step(result.runs, ledger)
    if outputs:
        step.write_outputs(outputs, outs, outputs_format.value)
    sys.stderr.write("tfaudit ci: " + " ".join(f"{k}={v}" for k, v in outs.items() if v) + "\n")
    return rc


def _comment_step(runs: list[Any], ledger: str) -> str:
    """Comment on the step's runs; a failure is reported and named in the outputs, never fatal to the step."""
    from tfaudit.ci import comment, forge
    from tfaudit.errors import TfauditError
    from tfaudit.query import runs as read_runs
    from tfaudit.redact import Redactor

    commented = [r for r in runs if r.command in comment.COMMENTED]
    if not commented:
        return ""
    try:
        target = forge.open_forge(None, os.environ, Redactor())
        if target is None:
            sys.stderr.write("tfaudit ci: no pull or merge request for this pipeline: no comment\n")
            return "none"
        every = read_runs([ledger])
        posted = [comment.publish(r, every, target, _repository_root()) for r in commented]
    except TfauditError as e:
        sys.stderr.write(f"tfaudit ci: comment failed: {e}\n")
        return "failed"
    for p in posted:
        sys.stderr.write(f"tfaudit ci: comment {'created' if p.created else 'updated'} on {p.where} ({p.key})\n")
    return ",".join(str(p.comment_id) for p in posted)


def _repository_root() -> str | None:
    return os.environ.get("GITHUB_WORKSPACE") or os.environ.get("CI_PROJECT_DIR") or None


@ci_app.command("comment")
def comment_cmd(
    ledger: Optional[str] = typer.Option(None, "--ledger", envvar="TFAUDIT_LEDGER", metavar="LEDGER",
                                         help="The ledger to read (default: the one tfaudit apply would write here)."),
    run_id: Optional[str] = typer.Option(None, "--run-id", metavar="ID",
                                         help="The run to comment on (a prefix will do; default: the newest plan or apply here)."),
    forge_name: Optional[str] = typer.Option(None, "--forge", metavar="github|gitlab",
                                             help="Which API (default: from the CI's environment)."),
    number: Optional[int] = typer.Option(None, "--number", metavar="N", min=1,
                                         help="Pull or merge request number (default: this pipeline's, or the commit's)."),
    label_prefix: str = typer.Option("", "--label-prefix", metavar="PREFIX",
                                     help="Prefix for the labels (several root modules on one request: e.g. 'prod/')."),
) -> int:
    """Post or update one pull/merge request comment per root module and workspace: plan, findings, outcome.

    GitHub: GITHUB_TOKEN, GITHUB_REPOSITORY, GITHUB_API_URL. GitLab: GITLAB_TOKEN (or CI_JOB_TOKEN),
    CI_PROJECT_ID, CI_API_V4_URL. Labels: destroy, add-or-update or no-changes.
    """
    from tfaudit.ci import comment, forge
    from tfaudit.query import runs as read_runs
    from tfaudit.redact import Redactor

    source = ledger or str(_inner_ledger(["plan"]))
    every = read_runs([source])
    run = comment.pick(every, run_id, None if run_id else str(Path.cwd().resolve()))
    if run is None:
        raise UsageError(f"no {'run ' + run_id if run_id else 'plan or apply run of this directory'} in {source}",
                         hint="run 'tfaudit plan' or 'tfaudit apply' first, or pass --run-id")
    try:
        name = forge.ForgeName(forge_name) if forge_name else None
    except ValueError:
        raise UsageError(f"--forge must be github or gitlab, not {forge_name!r}") from None
    target = forge.open_forge(name, os.environ, Redactor(), number)
    if target is None:
        raise UsageError("no pull or merge request found for this pipeline or commit", hint="pass --number N")
    posted = comment.publish(run, every, target, _repository_root(), label_prefix)
    typer.echo(f"{'created' if posted.created else 'updated'} comment {posted.comment_id} on {posted.where}"
               f" (labels: {', '.join(posted.labels)})")
    return 0


commands = typer.Typer()  # this module's commands, added to the root app by tfaudit.cli.app


commands.add_typer(ci_app, name="ci")
