"""tfaudit hook config|plan: the entry points of the pre-commit hooks in .pre-commit-hooks.yaml."""

from __future__ import annotations

import os
from typing import List, Optional

import typer

from tfaudit.cli import _choices

hook_app = typer.Typer(help="pre-commit hook entry points (see .pre-commit-hooks.yaml).", no_args_is_help=True)


@hook_app.command("config")
def config_hook(files: Optional[List[str]] = typer.Argument(None, help="Changed .tfaudit.hcl files.")) -> int:
    """Validate each .tfaudit.hcl (no terraform run); fails on the first invalid setting in any file."""
    from tfaudit.ci.precommit import check_configs

    return check_configs(files or [], typer.echo)


@hook_app.command("plan")
def plan_hook(
    files: Optional[List[str]] = typer.Argument(None, help="Changed files; each affected root module is planned once."),
    fail_on: Optional[str] = typer.Option(None, "--fail-on", parser=_choices.fail_on, metavar="SEVERITY", help="Fail when a finding is at least this severe: low, medium, high, critical."),
    record: bool = typer.Option(False, "--record", help="Record a plan.recorded record in each root's ledger (default: plan without recording)."),
    init: bool = typer.Option(True, "--init/--no-init", help="Run 'terraform init' in roots that were never initialized."),
    tf_arg: Optional[List[str]] = typer.Option(None, "--args", help="An argument for terraform plan, e.g. --args=-var-file=dev.tfvars (repeatable)."),
    tf_path: Optional[str] = typer.Option(None, "--tf-path", envvar="TFAUDIT_TF_PATH", help="terraform or tofu binary."),
) -> int:
    """For each changed root module: plan, analyze with the configured rules, fail on deny or --fail-on."""
    from tfaudit.ci.precommit import PlanOptions, run_plan_hook

    opts = PlanOptions(fail_on=fail_on, record=record, init=init, tf_args=tuple(tf_arg or ()), tf_path=tf_path)
    return run_plan_hook(files or [], opts, os.environ, typer.echo)


commands = typer.Typer()  # this module's commands, added to the root app by tfaudit.cli.app


commands.add_typer(hook_app, name="hook")
