"""The process entry point: terraform's own commands go to terraform (exec) before the CLI is loaded.

`alias terraform=tfaudit` makes every `terraform output`, `fmt` or `state list` start tfaudit
first; routing them here, before typer and the command modules are imported, keeps that
detour short. Everything else goes to `tfaudit.cli.app.main`.
"""

from __future__ import annotations

import gc
import os
import sys

from tfaudit.terraform.args import TERRAFORM_COMMANDS, Handler, parse_command_line, route


def main() -> int:
    line = parse_command_line(sys.argv[1:], os.environ.get("TFAUDIT_LOG_FORMAT"))
    # only terraform's command words take the short way: no command of tfaudit's is one of them, so
    # the router needs no list of tfaudit's commands here (the CLI routes everything else itself)
    where = route(line, ()) if line.args and line.args[0] in TERRAFORM_COMMANDS else None
    if where is not None and where.handler is Handler.TERRAFORM:
        from tfaudit.cli.terraform_cmd import answer
        from tfaudit.errors import TfauditError

        try:
            return answer(where, line.chdir, os.environ, replace=True)
        except TfauditError:
            pass  # no terraform to hand over to: the CLI says so, with its exit code
    from tfaudit.cli.app import main as cli_main

    try:
        return cli_main()
    finally:
        # The process ends next: its last garbage collections need not walk every object the
        # imports made (about 30 ms of CPU of every command; the objects are freed all the same).
        gc.freeze()
