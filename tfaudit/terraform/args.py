"""The one argument router: every table of terraform's flags, and every parse of a user's argv.

terraform parses flags with Go's `flag` package: `-name` and `--name` are the same flag, a
boolean flag takes its value only as `-name=VALUE`, any other flag takes the next argument as
its value unless written `-name=VALUE`. Nothing else in tfaudit looks inside an argv.
"""

from __future__ import annotations

import shlex
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from tfaudit.errors import UsageError

# Flags that take a value (the next argument when written without "="), over every command tfaudit runs.
VALUE_FLAGS = frozenset({
    "var", "var-file", "target", "replace", "exclude", "lock-timeout", "parallelism", "state",
    "state-out", "backup", "out", "generate-config-out", "chdir", "config", "provider",
})
# `tfaudit apply|destroy` runs plan, then apply: where each of the user's flags goes.
APPLY_ONLY = frozenset({"auto-approve", "backup", "state-out", "json"})
BOTH = frozenset({"lock", "lock-timeout", "parallelism", "compact-warnings", "no-color", "input", "state"})
# `tfaudit drift` sets these on its refresh-only plan itself.
DRIFT_OWN = ("refresh-only", "detailed-exitcode", "out", "destroy")


@dataclass(frozen=True)
class SplitArgs:
    plan: list[str]
    apply: list[str]
    positional: list[str]
    auto_approve: bool
    json: bool
    no_color: bool


def flag_name(arg: str) -> str | None:
    """`var` for -var, --var and -var=x; None for a positional (or `-`, `--`)."""
    if not arg.startswith("-") or arg in ("-", "--"):
        return None
    return arg.lstrip("-").split("=", 1)[0]


def flag_true(arg: str) -> bool:
    """A boolean flag's value: -x and -x=true are true, -x=false is false (Go's strconv.ParseBool)."""
    _, sep, value = arg.partition("=")
    return not sep or value.lower() in ("1", "t", "true")


def groups(args: Sequence[str], value_flags: frozenset[str] = VALUE_FLAGS) -> list[tuple[str | None, list[str]]]:
    """argv as (flag name or None for a positional, the argument and its separate value if any)."""
    out: list[tuple[str | None, list[str]]] = []
    i = 0
    while i < len(args):
        arg = args[i]
        name = flag_name(arg)
        group = [arg]
        if name in value_flags and "=" not in arg and i + 1 < len(args):
            group.append(args[i + 1])
            i += 1
        out.append((name, group))
        i += 1
    return out


def flag_value(args: Sequence[str], name: str) -> str | None:
    """The value of the last -name=VALUE / -name VALUE in args (None when absent)."""
    found: str | None = None
    for n, group in groups(args):
        if n == name:
            found = group[0].split("=", 1)[1] if "=" in group[0] else (group[1] if len(group) > 1 else None)
    return found


def positionals(args: Sequence[str]) -> list[str]:
    return [g[0] for n, g in groups(args) if n is None]


def split_args(args: Sequence[str]) -> SplitArgs:
    """Route `tfaudit apply` arguments: planning options to plan, apply options to apply.

    Unknown flags go to the plan step, so terraform's own error reaches the user unchanged.
    """
    plan: list[str] = []
    apply: list[str] = []
    positional: list[str] = []
    auto = js = no_color = False
    for name, group in groups(args):
        if name is None:
            positional += group
        elif name == "auto-approve":
            auto = flag_true(group[0])
        elif name == "json":
            js = flag_true(group[0])
        else:
            if name == "no-color":
                no_color = flag_true(group[0])
            if name in BOTH:
                plan += group
                apply += group
            elif name in APPLY_ONLY:
                apply += group
            else:
                plan += group
    return SplitArgs(plan, apply, positional, auto, js, no_color)


def extract_chdir(args: Sequence[str]) -> tuple[str | None, list[str]]:
    """Pull terraform's global -chdir=DIR (accepted before or after the command) out of args."""
    chdir: str | None = None
    rest: list[str] = []
    for name, group in groups(args):
        if name == "chdir" and (len(group) > 1 or "=" in group[0]):
            chdir = group[0].split("=", 1)[1] if "=" in group[0] else group[1]
        else:
            rest += group
    return chdir, rest


def plan_out(args: Sequence[str]) -> str | None:
    """The file `terraform plan ARGS` saves its plan to (-out), or None."""
    return flag_value(args, "out")


# Commands whose -state-out is no file for the state they change: plan and drift write no state,
# `state mv -state-out` is where the moved resources go (the source, -state, is changed too).
_STATE_OUT_ELSEWHERE = frozenset({"plan", "drift", "state mv"})


def state_flags(command: str, args: Sequence[str]) -> tuple[str | None, str | None]:
    """The state files the local backend's legacy flags name for `command` (as written; None: the
    backend's own): the one terraform reads (-state), the one it leaves (-state-out, else -state)."""
    read = flag_value(args, "state") or None
    if command in _STATE_OUT_ELSEWHERE:
        return read, read
    return read, flag_value(args, "state-out") or read


def moved_to(command: str, args: Sequence[str]) -> str | None:
    """`state mv -state-out=PATH`: the second state file it writes, where the moved resources go
    (as written; None for every other command)."""
    return (flag_value(args, "state-out") or None) if command == "state mv" else None


def drift_conflict(args: Sequence[str]) -> str | None:
    """The first flag `tfaudit drift` sets itself that the user gave too, as written (-out, ...)."""
    for name, group in groups(args):
        if name in DRIFT_OWN:
            return group[0].split("=", 1)[0]
    return None


def own_option(args: Sequence[str], option: str) -> str | None:
    """The value of one of tfaudit's own `--option VALUE` / `--option=VALUE` in a wrapped command's argv."""
    found: str | None = None
    for i, a in enumerate(args):
        if a == option and i + 1 < len(args):
            found = args[i + 1]
        elif a.startswith(option + "="):
            found = a.split("=", 1)[1]
    return found


# --- the whole command line: tfaudit's global options, terraform's, the command -----------------
@dataclass(frozen=True)
class CommandLine:
    """`tfaudit [GLOBALS] COMMAND ARGS`: what the user typed, with the global options taken out."""

    log_format: str | None
    verbosity: int
    chdir: str | None
    args: list[str]  # the command and its arguments


def parse_command_line(argv: Sequence[str], log_format: str | None = None) -> CommandLine:
    """--log-format/--verbose (tfaudit's) are accepted anywhere and removed; terraform's -chdir=DIR
    only before the command name, as terraform takes it."""
    verbosity = 0
    rest: list[str] = []
    i = 0
    while i < len(argv):
        a = argv[i]
        if a == "--log-format" and i + 1 < len(argv):
            log_format = argv[i + 1]
            i += 1
        elif a.startswith("--log-format="):
            log_format = a.split("=", 1)[1]
        elif a == "--verbose":
            verbosity += 1
        else:
            rest.append(a)
        i += 1
    chdir: str | None = None
    while rest and rest[0].startswith(("-chdir=", "--chdir=")):
        chdir = rest.pop(0).split("=", 1)[1]
    return CommandLine(log_format, verbosity, chdir, rest)


# --- which program answers: tfaudit, or terraform unchanged ------------------------------------
TERRAFORM_COMMANDS = frozenset({
    "init", "validate", "plan", "apply", "destroy", "console", "fmt", "force-unlock", "get", "graph",
    "import", "login", "logout", "metadata", "modules", "output", "providers", "refresh", "show", "state",
    "taint", "test", "untaint", "version", "workspace", "env", "rpcapi", "stacks",
})
# terraform commands tfaudit runs itself (and records); `drift` is tfaudit's refresh-only plan
RECORDED_COMMANDS = frozenset({"apply", "destroy", "plan", "import", "taint", "untaint", "state", "drift"})
RECORDED_STATE_SUBCOMMANDS = frozenset({"rm", "mv", "push", "replace-provider"})
HELP_FLAGS = frozenset({"-help", "-h"})  # terraform's; `--help` shows tfaudit's own help
VERSION_FLAGS = frozenset({"-version", "-v"})  # terraform's; `--version` prints tfaudit's version alone


class Handler(StrEnum):
    TFAUDIT = "tfaudit"  # one of tfaudit's commands (typer)
    TERRAFORM = "terraform"  # handed to terraform unchanged (exec)
    VERSION = "version"  # terraform's version, then tfaudit's
    HELP = "help"  # terraform's help, then a line on tfaudit's own commands


@dataclass(frozen=True)
class Route:
    handler: Handler
    args: list[str]  # for TERRAFORM: terraform's argv after -chdir; otherwise the command line for typer


def route(line: CommandLine, own_commands: Iterable[str]) -> Route:
    """Who answers `tfaudit ARGS`: tfaudit records the commands it knows, terraform gets the rest."""
    args, own = line.args, set(own_commands)
    if not args:
        return Route(Handler.TFAUDIT, args)
    first = args[0]
    if first in VERSION_FLAGS or first == "version":
        return Route(Handler.VERSION, args[1:])
    if first in HELP_FLAGS:
        return Route(Handler.HELP, args[1:])
    missing_dir = line.chdir is not None and not Path(line.chdir).is_dir()
    if first in RECORDED_COMMANDS:
        if "--help" in _before_double_dash(args):
            return Route(Handler.TFAUDIT, args)  # tfaudit's help for the command (-help is terraform's)
        if missing_dir or HELP_FLAGS & set(_before_double_dash(args)):
            return Route(Handler.TERRAFORM if first != "drift" else Handler.TFAUDIT, args)
        if first == "state":
            sub = next(iter(positionals(args[1:])), None)
            if sub not in RECORDED_STATE_SUBCOMMANDS:
                return Route(Handler.TERRAFORM, args)
        return Route(Handler.TFAUDIT, args)
    if first in own or first.startswith("--"):
        return Route(Handler.TFAUDIT, args)
    import difflib  # only for a word that is no command of either

    if first in TERRAFORM_COMMANDS or not difflib.get_close_matches(first, own - RECORDED_COMMANDS, 1, 0.8):
        return Route(Handler.TERRAFORM, args)
    return Route(Handler.TFAUDIT, args)  # a typo of one of tfaudit's commands: typer says which


def _before_double_dash(args: Sequence[str]) -> list[str]:
    return list(args[: args.index("--")]) if "--" in args else list(args)


def suggest_option(arg: str, options: Iterable[str]) -> str | None:
    """The option of tfaudit's a mistyped `--optoin` most likely meant, or None."""
    if not arg.startswith("--"):
        return None
    import difflib

    name = arg.split("=", 1)[0]
    found = difflib.get_close_matches(name, list(options), 1, 0.75)
    return found[0] if found and found[0] != name else None


# --- the flags terraform 1.11 accepts, per command tfaudit records ---------------------------------
_OPERATION = frozenset({"lock", "lock-timeout", "state", "state-out", "backup", "parallelism", "refresh", "destroy",
                        "refresh-only", "target", "replace", "exclude", "allow-deferral", "var", "var-file", "json",
                        "input", "compact-warnings", "no-color"})
_STATE = frozenset({"lock", "lock-timeout", "state", "backup", "ignore-remote-version", "no-color"})
KNOWN_FLAGS: dict[str, frozenset[str]] = {
    "plan": _OPERATION | {"detailed-exitcode", "out", "generate-config-out"},
    "apply": _OPERATION | {"auto-approve"},
    "destroy": _OPERATION | {"auto-approve"},
    "drift": _OPERATION - {"destroy", "refresh-only"},
    "import": _STATE | {"config", "input", "var", "var-file", "state-out", "allow-missing-config", "provider",
                        "parallelism"},
    "taint": _STATE | {"allow-missing", "state-out"},
    "untaint": _STATE | {"allow-missing", "state-out"},
    "state rm": _STATE | {"dry-run"},
    "state mv": _STATE | {"dry-run", "state-out", "backup-out"},
    "state push": _STATE | {"force"},
    "state replace-provider": _STATE | {"auto-approve"},
}


def unknown_flags(command: str, args: Sequence[str]) -> list[str]:
    """The flags in args that terraform's `command` does not take (as written)."""
    known = KNOWN_FLAGS.get(command)
    if known is None:
        return []
    return [g[0] for n, g in groups(args) if n is not None and n not in known]


def dangling_value_flag(args: Sequence[str]) -> bool:
    """Whether args ends with a flag that needs a value and has none (terraform: "flag needs an argument")."""
    found = groups(args)
    if not found:
        return False
    name, group = found[-1]
    return name in VALUE_FLAGS and len(group) == 1 and "=" not in group[0]


def probe_argv(words: Sequence[str], args: Sequence[str], probe: str) -> list[str]:
    """`words ARGS` with a flag no terraform has after the user's flags: terraform reports the first
    flag it does not know and stops, so it names the user's flag, or the probe when all are fine."""
    flags = [a for n, g in groups(args) if n is not None for a in g]
    return [*words, *flags, probe, *positionals(args)]


# --- TF_CLI_ARGS: terraform's extra arguments from the environment -----------------------------
def env_args(words: Sequence[str], env: Mapping[str, str]) -> list[str]:
    """The arguments terraform would take from TF_CLI_ARGS_<command> and TF_CLI_ARGS for the command
    the user typed (`state mv` reads TF_CLI_ARGS_state_mv), in terraform's order: both go right after
    the command name, the command's own first."""
    suffix = "_".join(words).replace("-", "_")
    out: list[str] = []
    for name in (f"TF_CLI_ARGS_{suffix}", "TF_CLI_ARGS"):
        value = env.get(name, "")
        if value.strip():
            try:
                out += shlex.split(value)
            except ValueError as e:
                raise UsageError(f"{name} cannot be split: {e}", hint="check its quotes") from None
    return out


def terraform_env(env: Mapping[str, str]) -> dict[str, str]:
    """The environment for the terraform steps tfaudit runs itself (plan, show, apply, state pull):
    without TF_CLI_ARGS*, whose arguments tfaudit has already routed to the step they belong to."""
    return {k: v for k, v in env.items() if k != "TF_CLI_ARGS" and not k.startswith("TF_CLI_ARGS_")}
