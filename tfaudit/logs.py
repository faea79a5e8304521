"""Logging, configured once by the CLI: structlog to stderr, console or JSON, redacted."""

from __future__ import annotations

import logging
import sys
from collections.abc import MutableMapping
from typing import Any

import structlog

from tfaudit.redact import Redactor


class RedactProcessor:
    """A structlog processor that scrubs every log line with one redactor (the session's, once a
    recorded run has opened: the config's secrets and those learned from the plan)."""

    def __init__(self, redactor: Redactor) -> None:
        self.redactor = redactor

    def __call__(self, _: Any, __: str, event_dict: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
        for k, v in list(event_dict.items()):
            if self.redactor.is_secret_name(str(k)):
                event_dict[k] = "(redacted)"
            elif isinstance(v, str):
                event_dict[k] = self.redactor.scrub(v)
        return event_dict


def set_redactor(redactor: Redactor) -> None:
    """Scrub log lines from now on with this redactor (a new processor in structlog's chain)."""
    processors = list(structlog.get_config()["processors"])
    if any(isinstance(p, RedactProcessor) for p in processors):  # configured by the CLI
        structlog.configure(processors=[RedactProcessor(redactor) if isinstance(p, RedactProcessor) else p
                                        for p in processors])


def current_redactor() -> Redactor:
    """The redactor log lines are scrubbed with now (for messages tfaudit prints itself)."""
    for p in structlog.get_config()["processors"]:
        if isinstance(p, RedactProcessor):
            return p.redactor
    return Redactor()


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
            RedactProcessor(Redactor()),
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(level),
        logger_factory=lambda *_: _StderrLogger(),
        cache_logger_on_first_use=False,
    )
