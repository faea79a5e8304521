"""apply / plan / destroy: terraform's commands, recorded."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Optional

import typer

from tfaudit.cli import _choices

from tfaudit.terraform.args import extract_chdir

if TYPE_CHECKING:
    from tfaudit.run.session import Invocation

# No short options here: terraform's single-dash flags (-var, -target) must reach it intact.
PASSTHROUGH = {"ignore_unknown_options": True, "allow_extra_args": True, "allow_interspersed_args": True,
               "help_option_names": ["--help"]}
TF_ARGS = "[OPTIONS] [TERRAFORM ARGUMENTS]..."

LedgerOpt = typer.Option(None, "--ledger", metavar="PATH", envvar="TFAUDIT_LEDGER", help="Ledger file (default: .tfaudit/ledger.jsonl beside the terraform config).")
KeyOpt = typer.Option(None, "--signing-key", metavar="PATH", envvar="TFAUDIT_SIGNING_KEY", help="Ed25519 private key (PEM) that signs the records.")
ConfigOpt = typer.Option(None, "--config", metavar="PATH", envvar="TFAUDIT_CONFIG", help="Config file (default: .tfaudit.hcl in the working directory).")
TfPathOpt = typer.Option(None, "--tf-path", metavar="PATH", envvar="TFAUDIT_TF_PATH", help="terraform or tofu binary (default: terraform, then tofu, on PATH).")
CheckpointsOpt = typer.Option(None, "--checkpoints", metavar="DEST", envvar="TFAUDIT_CHECKPOINTS", help="After the run, sign a checkpoint of the ledger into this directory (or s3://BUCKET/PREFIX, https:// URL).")
FailOnOpt = typer.Option(None, "--fail-on", metavar="SEVERITY", parser=_choices.fail_on, envvar="TFAUDIT_FAIL_ON", help="Block (exit 5, nothing applied) when the plan has a finding at or above this severity: low, medium, high, critical.")


def invocation(ctx: typer.Context, command: str, ledger: str | None, signing_key: str | None,
               config: str | None, tf_path: str | None, checkpoints: str | None = None,
               fail_on: str | None = None) -> Invocation:
    from tfaudit.run.session import Invocation

    chdir, args = extract_chdir(ctx.args)
    obj = ctx.obj if isinstance(ctx.obj, dict) else {}
    return Invocation(command=command, tf_args=tuple(args), chdir=chdir or obj.get("chdir"), ledger=ledger,
                      signing_key=signing_key, config=config, tf_path=tf_path, checkpoints=checkpoints,
                      fail_on=fail_on)


commands = typer.Typer()  # this module's commands, added to the root app by tfaudit.cli.app


@commands.command(context_settings=PASSTHROUGH, options_metavar=TF_ARGS)
def apply(ctx: typer.Context, ledger: Optional[str] = LedgerOpt, signing_key: Optional[str] = KeyOpt,
          config: Optional[str] = ConfigOpt, tf_path: Optional[str] = TfPathOpt,
         checkpoints: Optional[str] = CheckpointsOpt, fail_on: Optional[str] = FailOnOpt) -> int:
    """terraform apply, recorded: one signed record per changed resource. Takes terraform's arguments."""
    from tfaudit.run.apply import run_apply

    return run_apply(invocation(ctx, "apply", ledger, signing_key, config, tf_path, checkpoints, fail_on), os.environ)

@commands.command(context_settings=PASSTHROUGH, options_metavar=TF_ARGS)
def destroy(ctx: typer.Context, ledger: Optional[str] = LedgerOpt, signing_key: Optional[str] = KeyOpt,
            config: Optional[str] = ConfigOpt, tf_path: Optional[str] = TfPathOpt,
            checkpoints: Optional[str] = CheckpointsOpt, fail_on: Optional[str] = FailOnOpt) -> int:
    """terraform destroy, recorded. Takes terraform's arguments."""
    from tfaudit.run.apply import run_apply

    return run_apply(invocation(ctx, "destroy", ledger, signing_key, config, tf_path, checkpoints, fail_on), os.environ)

@commands.command(context_settings=PASSTHROUGH, options_metavar=TF_ARGS)
def plan(ctx: typer.Context, ledger: Optional[str] = LedgerOpt, signing_key: Optional[str] = KeyOpt,
         config: Optional[str] = ConfigOpt, tf_path: Optional[str] = TfPathOpt,
         checkpoints: Optional[str] = CheckpointsOpt, fail_on: Optional[str] = FailOnOpt) -> int:
    """terraform plan, recorded as a plan.recorded record. Takes terraform's arguments."""
    from tfaudit.run.plan import run_plan

    return run_plan(invocation(ctx, "plan", ledger, signing_key, config, tf_path, checkpoints, fail_on), os.environ)
