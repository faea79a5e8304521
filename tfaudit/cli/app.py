"""`tfaudit` entry point: global options, command registry, and the one error handler."""

from __future__ import annotations

import importlib
import os
import sys
import traceback
from collections.abc import Sequence

import typer

from tfaudit import logs
from tfaudit.cli._metavars import word_metavars
from tfaudit.errors import ExitCode, TfauditError
from tfaudit.terraform.args import Handler, parse_command_line, route

app = typer.Typer(
    name="tfaudit",
    help="Signed, hash-chained audit records for every terraform change.\n\n"
    "Use 'tfaudit apply|plan|destroy' in place of terraform's; every other argument goes to terraform unchanged.",
    add_completion=True,  # --install-completion, --show-completion
    rich_markup_mode=None,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    pretty_exceptions_show_locals=False,
    context_settings={"help_option_names": ["--help"]},
)


def _version(value: bool) -> None:
    if value:
        from tfaudit import __version__

        typer.echo(f"tfaudit {__version__}")
        raise typer.Exit(0)


@app.callback()
def _root(version: bool = typer.Option(False, "--version", callback=_version, is_eager=True,
                                       help="Print tfaudit's version and exit.")) -> None:
    """Signed, hash-chained audit records for every terraform change.

    Use 'tfaudit apply|plan|destroy' in place of terraform's; every other argument goes to terraform unchanged.
    """


# Explicit command registry: each module's `commands` holds its module-level command functions.
# One line per module; modules keep heavy imports (boto3, the runner) inside their commands.
COMMAND_MODULES: tuple[str, ...] = (
    "tfaudit.cli.wrap_cmd",  # apply, destroy, plan
    "tfaudit.cli.state_cmd",  # import, taint, untaint, state
    "tfaudit.cli.drift_cmd",  # drift
    "tfaudit.cli.recover_cmd",  # recover
    "tfaudit.cli.analyze_cmd",  # analyze
    "tfaudit.cli.verify_cmd",  # verify
    "tfaudit.cli.ledger_cmd",  # ledger init, ledger import, ledger repair
    "tfaudit.cli.prove_cmd",  # prove, verify-proof
    "tfaudit.cli.log_cmd",  # log
    "tfaudit.cli.history_cmd",  # history
    "tfaudit.cli.report_cmd",  # report
    "tfaudit.cli.export_cmd",  # export
    "tfaudit.cli.delivery_cmd",  # flush, status, kms-pubkey
    "tfaudit.cli.keys_cmd",  # keygen
    "tfaudit.cli.config_cmd",  # config validate
    "tfaudit.cli.precommit_cmd",  # hook
    "tfaudit.cli.ci_cmd",  # ci
)
for _name in COMMAND_MODULES:
    _commands: typer.Typer = importlib.import_module(_name).commands
    app.registered_commands += _commands.registered_commands
    app.registered_groups += _commands.registered_groups
word_metavars(app)


def _own_commands() -> set[str]:
    """The names of tfaudit's commands and command groups (typer's names: underscores become dashes)."""
    names = {c.name if isinstance(c.name, str) else (c.callback.__name__ if c.callback else "")
             for c in app.registered_commands}
    for g in app.registered_groups:
        name = g.name if isinstance(g.name, str) else g.typer_instance.info.name if g.typer_instance else None
        names.add(name if isinstance(name, str) else "")
    return {n.replace("_", "-").strip("-") for n in names if n}


def _cls(name: str) -> type[Exception]:
    """typer >= 0.20 vendors click: find its exception classes through a public one."""
    for klass in typer.BadParameter.__mro__:
        if klass.__name__ == name:
            return klass
    raise ImportError(name)


_UsageError = _cls("UsageError")
_ClickException = _cls("ClickException")


class _GlobalsError(Exception):
    pass


def main(argv: Sequence[str] | None = None) -> int:
    """`tfaudit ARGS` as a process (argv None: terraform's own commands replace this process) or
    inside another command (`tfaudit ci run`: they run as a child); returns the exit code."""
    args = list(sys.argv[1:] if argv is None else argv)
    verbosity = 0
    try:
        line = parse_command_line(args, os.environ.get("TFAUDIT_LOG_FORMAT"))
        verbosity = line.verbosity
        if line.log_format not in (None, "console", "json"):
            raise _GlobalsError(f"--log-format must be console or json, not {line.log_format!r}")
        logs.configure(line.log_format, verbosity)
        where = route(line, _own_commands())
        if where.handler is not Handler.TFAUDIT:
            from tfaudit.cli.terraform_cmd import answer

            return answer(where, line.chdir, os.environ, replace=argv is None)
        result = app(args=line.args, prog_name="tfaudit", standalone_mode=False,
                     obj={"chdir": line.chdir, "run": main})
        return int(result) if isinstance(result, int) else 0
    except TfauditError as e:
        _error(str(e))
        return int(e.exit_code)
    except typer.Abort:
        return int(ExitCode.INTERRUPTED)
    except typer.Exit as e:
        return int(e.exit_code)
    except _GlobalsError as e:
        _error(str(e))
        return int(ExitCode.USAGE)
    except _UsageError as e:
        ctx = getattr(e, "ctx", None)
        path = ctx.command_path if ctx is not None else "tfaudit"
        _error(f"{e.format_message()} (see '{path} --help')")  # type: ignore[attr-defined]
        return int(ExitCode.USAGE)
    except _ClickException as e:
        _error(e.format_message())  # type: ignore[attr-defined]
        return int(ExitCode.USAGE)
    except KeyboardInterrupt:
        _error("interrupted")
        return int(ExitCode.INTERRUPTED)
    except BrokenPipeError:
        return int(ExitCode.OK)
    except Exception as e:  # noqa: BLE001 - the one place a bug becomes exit 3
        if verbosity:
            traceback.print_exc()
        _error(f"internal error: {type(e).__name__}: {str(e)[:200]} "
               "(a tfaudit bug; re-run with --log-format json --verbose for the traceback)")
        return int(ExitCode.INTERNAL)


def _error(message: str) -> None:
    from tfaudit.logs import current_redactor

    sys.stderr.write(f"tfaudit: error: {current_redactor().scrub(message)}\n")
    sys.stderr.flush()


if __name__ == "__main__":
    sys.exit(main())
