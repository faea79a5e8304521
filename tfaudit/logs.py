"""Logging, configured once by the CLI: structlog to stderr, console or JSON, redacted.

Importing structlog costs about 0.1 s (its dev module pulls in rich), more than a whole
`tfaudit analyze` of a small plan: `get_logger` hands out loggers that drop lines below
the configured level without importing it, and structlog is set up on the first line
that is printed. The redactor is the session's once a recorded run has opened.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import MutableMapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tfaudit.redact import Redactor


class RedactProcessor:
    """A structlog processor that scrubs every log line with the current redactor."""

    def __call__(self, _: Any, __: str, event_dict: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
        redactor = current_redactor()
        for k, v in list(event_dict.items()):
            if redactor.is_secret_name(str(k)):
                event_dict[k] = "(redacted)"
            elif isinstance(v, str):
                event_dict[k] = redactor.scrub(v)
        return event_dict


class _Settings:
    redactor: Redactor | None = None
    log_format: str | None = None
    level: int = logging.WARNING
    structlog_ready = False


def set_redactor(redactor: Redactor) -> None:
    """Scrub log lines (and tfaudit's own error messages) with this redactor from now on."""
    _Settings.redactor = redactor


def current_redactor() -> Redactor:
    """The redactor log lines are scrubbed with now (the default one until a run sets its own)."""
    if _Settings.redactor is None:
        from tfaudit.redact import Redactor  # compiles its patterns: only when something is scrubbed

        _Settings.redactor = Redactor()
    return _Settings.redactor


class _StderrLogger:
    """Writes to whatever sys.stderr is at the time of the call (it may be replaced after configure)."""

    def msg(self, message: str) -> None:
        print(message, file=sys.stderr, flush=True)

    debug = info = warning = warn = error = critical = exception = fatal = log = msg


def configure(log_format: str | None, verbosity: int) -> None:
    """Remember the format and level; structlog itself is set up when the first line is printed."""
    _Settings.level = logging.WARNING - 10 * min(verbosity, 2)
    _Settings.log_format = log_format
    _Settings.structlog_ready = False


def _setup_structlog() -> None:
    import structlog

    fmt = _Settings.log_format or ("console" if sys.stderr.isatty() else "json")
    renderer: Any = structlog.processors.JSONRenderer() if fmt == "json" else structlog.dev.ConsoleRenderer(colors=False)
    structlog.configure(
        processors=[
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            RedactProcessor(),
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(_Settings.level),
        logger_factory=lambda *_: _StderrLogger(),
        cache_logger_on_first_use=False,
    )
    _Settings.structlog_ready = True


class Logger:
    """A named logger: a line below the configured level costs one comparison and imports nothing."""

    def __init__(self, name: str) -> None:
        self._name = name

    def _emit(self, level: int, method: str, event: str, kw: dict[str, Any]) -> None:
        if level < _Settings.level:
            return
        if not _Settings.structlog_ready:
            _setup_structlog()
        import structlog

        getattr(structlog.get_logger(self._name), method)(event, **kw)

    def debug(self, event: str, **kw: Any) -> None:
        self._emit(logging.DEBUG, "debug", event, kw)

    def info(self, event: str, **kw: Any) -> None:
        self._emit(logging.INFO, "info", event, kw)

    def warning(self, event: str, **kw: Any) -> None:
        self._emit(logging.WARNING, "warning", event, kw)

    def error(self, event: str, **kw: Any) -> None:
        self._emit(logging.ERROR, "error", event, kw)

    def exception(self, event: str, **kw: Any) -> None:
        """An error line with the exception being handled (call it from an except block)."""
        self._emit(logging.ERROR, "exception", event, kw)


def get_logger(name: str = "tfaudit") -> Logger:
    return Logger(name)
