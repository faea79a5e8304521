"""tfaudit config validate."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from tfaudit.errors import ConfigError

config_app = typer.Typer(help="Work with .tfaudit.hcl.", no_args_is_help=True)


@config_app.command("validate")
def validate(
    path: Optional[Path] = typer.Argument(None, help="Config file (default: ./.tfaudit.hcl)."),
    config: Optional[str] = typer.Option(None, "--config", envvar="TFAUDIT_CONFIG", help="Config file."),
) -> int:
    """Parse the config and report the first error with its file and block."""
    from tfaudit.config import CONFIG_NAME, find_config, parse_config

    found = path or find_config(config, Path.cwd())
    if found is None:
        raise ConfigError(f"no {CONFIG_NAME} in {Path.cwd()}", hint="pass the file, or create one")
    cfg = parse_config(Path(found))
    if {"rule", "rules", "waiver"} & set(cfg.sections):
        from tfaudit.analysis.policy import Policy

        Policy.from_config(cfg)  # cross-checks between blocks, e.g. a waiver naming an unknown rule
    blocks = ["ledger", "signing", "redact", "identity", *sorted(cfg.sections)]
    typer.echo(f"{found}: valid ({', '.join(b for b in blocks if b in _present(cfg))})" if _present(cfg) else f"{found}: valid (empty)")
    return 0


def _present(cfg: object) -> set[str]:
    from tfaudit.config import Config

    assert isinstance(cfg, Config)
    defaults = Config()
    present = {n for n in ("ledger", "signing", "redact", "identity") if getattr(cfg, n) != getattr(defaults, n)}
    return present | set(cfg.sections)


commands = typer.Typer()  # this module's commands, added to the root app by tfaudit.cli.app


commands.add_typer(config_app, name="config")
