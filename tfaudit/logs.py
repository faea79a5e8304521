"""Logging, configured once by the CLI: structlog to stderr, console or JSON, redacted."""

from __future__ import annotations

import logging
import sys
from collections.abc import MutableMapping
from typing import Any

import structlog

from tfaudit.redact import Redactor

_redactor: Redactor = Redactor()


def set_redactor(redactor: Redactor) -> None:
    """The run's redactor, so log lines are scrubbed of the secrets it has learned."""
    global _redactor
    _redactor = redactor


def _redact_processor(_: Any, __: str, event_dict: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    for k, v in list(event_dict.items()):
        if _redactor.is_secret_name(str(k)):
            event_dict[k] = "(redacted)"
        elif isinstance(v, str):
            event_dict[k] = _redactor.scrub(v)
    return event_dict


class _StderrLogger:
    """Writes to whatever sys.stderr is at the time of the call (it may be replaced after configure)."""

    def msg(self, message: str) -> None:
        print(message, file=sys.stderr, flush=True)

    debug = info = warning = warn = error = critical = exception = fatal = log = msg


def configure(log_format: str | None, verbosity: int) -> None:
    level = logging.WARNING - 10 * min(verbosity, 2)
    fmt = log_format or ("console" if sys.stderr.isatty() else "json")
    renderer: Any = structlog.processors.JSONRenderer() if fmt == "json" else structlog.dev.ConsoleRenderer(colors=False)
    structlog.configure(
        processors=[
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            _redact_processor,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(level),
        logger_factory=lambda *_: _StderrLogger(),
        cache_logger_on_first_use=False,
    )
