"""How every reading command takes its ledger and its output format: one option, one default.

`--ledger LEDGER` (repeatable where a command reads several; env TFAUDIT_LEDGER) is a ledger
file, a folder of .jsonl files or a store URL; without it, the ledger `tfaudit apply` here would
write. `--format text|json` everywhere.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from enum import Enum
from pathlib import Path
from typing import Any

import typer

from tfaudit.errors import UsageError

LEDGER_HELP = ("Ledger file, folder of .jsonl files, or store URL (s3://BUCKET/PREFIX, postgresql://...); "
               "default: TFAUDIT_LEDGER, the config's ledger, or .tfaudit/ledger.jsonl.")


class ReadFormat(str, Enum):
    TEXT = "text"
    JSON = "json"


def ledger_option(repeatable: bool = True) -> Any:  # typer.Option's own return type, so it types as any default
    return typer.Option(None, "--ledger", envvar="TFAUDIT_LEDGER", metavar="LEDGER",
                        help=LEDGER_HELP + (" Repeatable." if repeatable else ""))


def format_option(default: ReadFormat = ReadFormat.TEXT) -> Any:
    return typer.Option(default, "--format", help="text (for people) or json (for scripts).")


def chdir_of(ctx: typer.Context) -> str | None:
    """terraform's -chdir given to tfaudit (before the command), which moves the default ledger too."""
    obj = ctx.find_root().obj
    return obj.get("chdir") if isinstance(obj, dict) else None


def ledger_specs(given: Sequence[str | Path] | None, config: str | None = None, chdir: str | None = None) -> list[str]:
    """The given ledgers, else the one `tfaudit apply` would write here (tfaudit.run.session decides:
    TFAUDIT_LEDGER, the config's ledger.path, else .tfaudit/ledger.jsonl in the working directory,
    -chdir included)."""
    if given:
        return [str(g) for g in given]
    from tfaudit.run.session import resolve_ledger

    store = resolve_ledger(None, chdir=chdir, config_path=config, env=os.environ)
    if not store.exists() and not os.environ.get("TFAUDIT_LEDGER"):
        raise UsageError(f"no ledger given and none at {store.url}",
                         hint="pass --ledger LEDGER (or set TFAUDIT_LEDGER)")
    return [store.url]


def default_public_keys(config: str | None = None) -> list[Path]:
    """The public half of the key tfaudit signs with here: the configured key's (or the per-user
    key's) `.pub` beside it, as `tfaudit keygen` and the first-use key write it."""
    from tfaudit.config import load_config
    from tfaudit.trail.signing import default_key_path

    cfg = load_config(config or os.environ.get("TFAUDIT_CONFIG"), Path.cwd())
    key = os.environ.get("TFAUDIT_SIGNING_KEY") or (str(cfg.signing.key) if cfg.signing.key else None)
    private = Path(key).expanduser() if key else default_key_path(os.environ)
    public = private.with_name(private.name + ".pub")
    if not public.is_file():
        raise UsageError(f"no public key given, and none at {public}",
                         hint="pass --public-key PUB (the .pub file written by 'tfaudit keygen')")
    return [public]
