"""The one argument router: every table of terraform's flags, and every parse of a user's argv.

terraform parses flags with Go's `flag` package: `-name` and `--name` are the same flag, a
boolean flag takes its value only as `-name=VALUE`, any other flag takes the next argument as
its value unless written `-name=VALUE`. Nothing else in tfaudit looks inside an argv.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

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
    """--log-format/--verbose (tfaudit's) are accepted anywhere and removed; -v/-vv and terraform's
    -chdir=DIR only before the command name (after it, -v could be terraform's)."""
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
    while rest and (rest[0] in ("-v", "-vv") or rest[0].startswith(("-chdir=", "--chdir="))):
        a = rest.pop(0)
        if a.startswith("-v"):
            verbosity += len(a) - 1
        else:
            chdir = a.split("=", 1)[1]
    return CommandLine(log_format, verbosity, chdir, rest)
