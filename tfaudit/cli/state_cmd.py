"""tfaudit import / state rm|mv|push|replace-provider / taint / untaint: terraform's state commands, recorded."""

from __future__ import annotations

import os
from typing import Optional

import typer

from tfaudit.cli.wrap_cmd import PASSTHROUGH, TF_ARGS, ConfigOpt, KeyOpt, LedgerOpt, TfPathOpt, invocation, terraform_refuses


def _recorded(ctx: typer.Context, words: list[str], ledger: str | None, signing_key: str | None,
              config: str | None, tf_path: str | None) -> int:
    from tfaudit.run.state import run_state_command

    inv = invocation(ctx, " ".join(words), ledger, signing_key, config, tf_path)
    refused = terraform_refuses(inv)
    return refused if refused is not None else run_state_command(inv, os.environ, words)


commands = typer.Typer()  # this module's commands, added to the root app by tfaudit.cli.app


@commands.command("import", context_settings=PASSTHROUGH, options_metavar=TF_ARGS)
def import_(ctx: typer.Context, ledger: Optional[str] = LedgerOpt, signing_key: Optional[str] = KeyOpt,
            config: Optional[str] = ConfigOpt, tf_path: Optional[str] = TfPathOpt) -> int:
    """terraform import ADDR ID, recorded as state.changed."""
    return _recorded(ctx, ["import"], ledger, signing_key, config, tf_path)

@commands.command(context_settings=PASSTHROUGH, options_metavar=TF_ARGS)
def taint(ctx: typer.Context, ledger: Optional[str] = LedgerOpt, signing_key: Optional[str] = KeyOpt,
          config: Optional[str] = ConfigOpt, tf_path: Optional[str] = TfPathOpt) -> int:
    """terraform taint ADDR, recorded as state.changed."""
    return _recorded(ctx, ["taint"], ledger, signing_key, config, tf_path)

@commands.command(context_settings=PASSTHROUGH, options_metavar=TF_ARGS)
def untaint(ctx: typer.Context, ledger: Optional[str] = LedgerOpt, signing_key: Optional[str] = KeyOpt,
            config: Optional[str] = ConfigOpt, tf_path: Optional[str] = TfPathOpt) -> int:
    """terraform untaint ADDR, recorded as state.changed."""
    return _recorded(ctx, ["untaint"], ledger, signing_key, config, tf_path)

@commands.command(context_settings=PASSTHROUGH, options_metavar=TF_ARGS)
def state(ctx: typer.Context, ledger: Optional[str] = LedgerOpt, signing_key: Optional[str] = KeyOpt,
          config: Optional[str] = ConfigOpt, tf_path: Optional[str] = TfPathOpt) -> int:
    """terraform state rm|mv|push|replace-provider, recorded as state.changed (list, show, pull pass through)."""
    from tfaudit.run.state import state_subcommand
    from tfaudit.terraform.args import extract_chdir
    from tfaudit.terraform.binary import detect

    chdir, args = extract_chdir(ctx.args)
    words, rest, record = state_subcommand(args)
    if record:
        ctx.args = [*(([f"-chdir={chdir}"]) if chdir else []), *rest]
        return _recorded(ctx, words, ledger, signing_key, config, tf_path)
    obj = ctx.obj if isinstance(ctx.obj, dict) else {}
    tf = detect(tf_path, os.environ, chdir or obj.get("chdir"))
    return tf.run([*words, *rest])
