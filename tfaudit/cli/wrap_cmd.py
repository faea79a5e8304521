"""apply / plan / destroy: terraform's commands, recorded."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Optional

import typer

from tfaudit.cli import _choices
from tfaudit.errors import UsageError
from tfaudit.terraform.args import dangling_value_flag, env_args, extract_chdir, split_args, suggest_option, terraform_env, unknown_flags

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
QuietOpt = typer.Option(False, "--quiet", envvar="TFAUDIT_QUIET", help="No line of tfaudit's own after terraform's output (what was recorded, where).")
FailOnOpt = typer.Option(None, "--fail-on", metavar="SEVERITY", parser=_choices.fail_on, envvar="TFAUDIT_FAIL_ON", help="Block (exit 5, nothing applied) when the plan has a finding at or above this severity: low, medium, high, critical.")


def invocation(ctx: typer.Context, command: str, ledger: str | None, signing_key: str | None,
               config: str | None, tf_path: str | None, checkpoints: str | None = None,
               fail_on: str | None = None) -> Invocation:
    """What the user asked for, with terraform's TF_CLI_ARGS_<command> and TF_CLI_ARGS taken in as
    terraform takes them for the command typed; a mistyped option of tfaudit's is named."""
    from tfaudit.run.session import Invocation

    chdir, args = extract_chdir(ctx.args)
    own = [o for p in ctx.command.params for o in p.opts if o.startswith("--")]
    for a in args:
        near = suggest_option(a, own)
        if near is not None:
            raise UsageError(f"no such option: {a.split('=', 1)[0]}", hint=f"did you mean {near}?")
    tf_args = [*env_args(["plan"] if command == "drift" else command.split(), os.environ), *args]
    obj = ctx.obj if isinstance(ctx.obj, dict) else {}
    return Invocation(command=command, tf_args=tuple(tf_args), chdir=chdir or obj.get("chdir"), ledger=ledger,
                      signing_key=signing_key, config=config, tf_path=tf_path, checkpoints=checkpoints,
                      fail_on=fail_on)


def terraform_refuses(inv: Invocation) -> int | None:
    """terraform's own answer, when it would refuse these arguments before doing anything: a flag it
    does not take or one missing its value (its usage error), `apply -json` without approval (its JSON
    error). Nothing is recorded."""
    from tfaudit.terraform import binary, proc

    words = ["plan"] if inv.command == "drift" else inv.command.split()
    if unknown_flags(inv.command, inv.tf_args):
        rc = binary.rejected_flags(words, inv.tf_args, tf_path=inv.tf_path, env=os.environ, chdir=inv.chdir)
        if rc is not None:
            return rc
    split = split_args(inv.tf_args)
    if dangling_value_flag(inv.tf_args) or (
            inv.command in ("apply", "destroy") and split.json and not split.auto_approve and not split.positional):
        path, _tool = binary.find_binary(inv.tf_path, os.environ)
        argv = [path, *([f"-chdir={inv.chdir}"] if inv.chdir else []), *words, *inv.tf_args]
        return proc.hand_over(argv, terraform_env(os.environ), replace=False)
    return None


commands = typer.Typer()  # this module's commands, added to the root app by tfaudit.cli.app


def _recorded(ctx: typer.Context, command: str, ledger: Optional[str], signing_key: Optional[str],
              config: Optional[str], tf_path: Optional[str], checkpoints: Optional[str], fail_on: Optional[str],
              quiet: bool) -> int:
    """apply, destroy and plan: terraform's own refusals first (nothing recorded), then the recorded run."""
    from tfaudit.ui.console import Console

    inv = invocation(ctx, command, ledger, signing_key, config, tf_path, checkpoints, fail_on)
    refused = terraform_refuses(inv)
    if refused is not None:
        return refused
    if command == "plan":
        from tfaudit.run.plan import run_plan

        return run_plan(inv, os.environ, Console(quiet=quiet))
    from tfaudit.run.apply import run_apply

    return run_apply(inv, os.environ, Console(quiet=quiet))


@commands.command(context_settings=PASSTHROUGH, options_metavar=TF_ARGS)
def apply(ctx: typer.Context, ledger: Optional[str] = LedgerOpt, signing_key: Optional[str] = KeyOpt,
          config: Optional[str] = ConfigOpt, tf_path: Optional[str] = TfPathOpt,
          checkpoints: Optional[str] = CheckpointsOpt, fail_on: Optional[str] = FailOnOpt,
          quiet: bool = QuietOpt) -> int:
    """terraform apply, recorded: one signed record per changed resource. Takes terraform's arguments."""
    return _recorded(ctx, "apply", ledger, signing_key, config, tf_path, checkpoints, fail_on, quiet)


@commands.command(context_settings=PASSTHROUGH, options_metavar=TF_ARGS)
def destroy(ctx: typer.Context, ledger: Optional[str] = LedgerOpt, signing_key: Optional[str] = KeyOpt,
            config: Optional[str] = ConfigOpt, tf_path: Optional[str] = TfPathOpt,
            checkpoints: Optional[str] = CheckpointsOpt, fail_on: Optional[str] = FailOnOpt,
            quiet: bool = QuietOpt) -> int:
    """terraform destroy, recorded. Takes terraform's arguments."""
    return _recorded(ctx, "destroy", ledger, signing_key, config, tf_path, checkpoints, fail_on, quiet)


@commands.command(context_settings=PASSTHROUGH, options_metavar=TF_ARGS)
def plan(ctx: typer.Context, ledger: Optional[str] = LedgerOpt, signing_key: Optional[str] = KeyOpt,
         config: Optional[str] = ConfigOpt, tf_path: Optional[str] = TfPathOpt,
         checkpoints: Optional[str] = CheckpointsOpt, fail_on: Optional[str] = FailOnOpt,
         quiet: bool = QuietOpt) -> int:
    """terraform plan, recorded as a plan.recorded record. Takes terraform's arguments."""
    return _recorded(ctx, "plan", ledger, signing_key, config, tf_path, checkpoints, fail_on, quiet)

