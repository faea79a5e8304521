"""Closed choices of the command line as enums: typer parses them, one error wording for a bad value.

The enums live with the code that uses them (records.Severity, analysis.formats.OutputFormat) and
are imported when an option is parsed, so starting tfaudit loads neither.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from enum import Enum
from typing import TYPE_CHECKING, TypeVar

from tfaudit.errors import UsageError

if TYPE_CHECKING:
    from tfaudit.records import Severity

E = TypeVar("E", bound=Enum)


def parser(option: str, choices: Iterable[E], hint: str | None = None) -> Callable[[str], E]:
    """A typer `parser=` for a closed choice: the enum member, or a UsageError naming the choices."""
    allowed = {str(c.value): c for c in choices}

    def parse(value: str | E) -> E:
        if isinstance(value, Enum):
            return value
        if value in allowed:
            return allowed[value]
        raise UsageError(f"{option} must be one of {', '.join(allowed)}, not {value!r}", hint=hint)

    return parse


def fail_on(value: str) -> Severity:
    """--fail-on: a severity a finding can reach to block; every severity but info (never blocks)."""
    from tfaudit.records import Severity

    gates = [s for s in Severity if s is not Severity.INFO]
    return parser("--fail-on", gates, hint="or unset TFAUDIT_FAIL_ON")(value)


def output_format(value: str) -> OutputFormat:
    """analyze --format."""
    from tfaudit.analysis.formats import OutputFormat  # the analysis modules load only when analyze runs

    return parser("--format", OutputFormat)(value)


if TYPE_CHECKING:
    from tfaudit.analysis.formats import OutputFormat
