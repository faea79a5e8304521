"""The process entry point: terraform's own commands go to terraform (exec) before the CLI is loaded.

`alias terraform=tfaudit` makes every `terraform output`, `fmt` or `state list` start tfaudit
first; routing them here, before typer and the command modules are imported, keeps that
detour short. Everything else goes to `tfaudit.cli.app.main`.
"""

from __future__ import annotations

import os
import sys

from tfaudit.terraform.args import Handler, parse_command_line, route

# tfaudit's commands and command groups (tests check this against the typer app)
OWN_COMMANDS = frozenset({
    "analyze", "apply", "ci", "config", "destroy", "drift", "export", "flush", "history", "hook", "import",
    "keygen", "kms-pubkey", "ledger", "log", "plan", "prove", "report", "state", "status", "taint", "untaint",
    "verify", "verify-proof",
})


def main() -> int:
    line = parse_command_line(sys.argv[1:], os.environ.get("TFAUDIT_LOG_FORMAT"))
    if route(line, OWN_COMMANDS).handler is Handler.TERRAFORM:
        from tfaudit.cli.terraform_cmd import answer
        from tfaudit.errors import TfauditError

        try:
            return answer(route(line, OWN_COMMANDS), line.chdir, os.environ, replace=True)
        except TfauditError:
            pass  # no terraform to hand over to: the CLI says so, with its exit code
    from tfaudit.cli.app import main as cli_main

    return cli_main()
