"""Help placeholders are words (PATH, N, ADDRESS), never Python types (`<str>`, `<int range>`).

Every command's parameters without a metavar of their own get one here, once, from the
parameter's name: the same word for the same thing across all commands.
"""

from __future__ import annotations

import inspect
from enum import Enum
from typing import Any

import typer
from typer.models import ArgumentInfo, OptionInfo

WORDS: dict[str, str] = {
    "ledger": "LEDGER", "ledgers": "LEDGER", "since": "WHEN", "until": "WHEN", "actor": "USER",
    "workspace": "WORKSPACE", "outcome": "OUTCOME", "limit": "N", "config": "PATH", "html_out": "FILE",
    "public_key": "PUB", "title": "TEXT", "sink": "SINK", "deadline": "SECONDS", "address": "ADDRESS",
    "output": "FILE", "out": "FILE", "run": "ID", "run_id": "ID", "signing_key": "PATH", "tf_path": "PATH",
    "plan": "PLAN", "files": "FILE", "number": "N", "region": "REGION", "profile": "PROFILE",
    "endpoint_url": "URL", "fmt": "FORMAT", "fail_on": "SEVERITY", "format": "FORMAT", "kms_key_id": "KEY", "path": "PATH", "url": "URL", "src": "FILE", "dest": "URL",
}


def _is_flag_or_choice(annotation: Any) -> bool:
    inner = getattr(annotation, "__args__", (annotation,))
    return any(a is bool or (isinstance(a, type) and issubclass(a, Enum)) for a in inner)


def _fill(callback: Any) -> None:
    try:
        params = inspect.signature(callback, eval_str=True).parameters.values()
    except (NameError, TypeError, ValueError):
        return  # an annotation only importable when type checking: leave this command as it is
    for p in params:
        info = p.default
        if not isinstance(info, (OptionInfo, ArgumentInfo)) or info.metavar:
            continue
        if info.parser is None and _is_flag_or_choice(p.annotation):  # typer lists the choices itself
            continue
        info.metavar = WORDS.get(p.name, p.name.upper())


def word_metavars(app: typer.Typer) -> None:
    for cmd in app.registered_commands:
        _fill(cmd.callback)
    for group in app.registered_groups:
        if group.typer_instance is not None:
            word_metavars(group.typer_instance)
