"""tfaudit export: a ledger in a standard format, one JSON document per line."""

from __future__ import annotations

import json
import os
import sys
from enum import Enum
from pathlib import Path
from typing import IO, TYPE_CHECKING, Optional

import typer

from tfaudit.errors import InputError, UsageError

if TYPE_CHECKING:
    from tfaudit.trail.signing import Signer


class ExportFormat(str, Enum):
    OCSF = "ocsf"
    IN_TOTO = "in-toto"
    CLOUDEVENTS = "cloudevents"
    NATIVE = "native"


def _signer(signing_key: str | None, config: str | None) -> Signer:
    """The key that signs in-toto envelopes: --signing-key, else the config's, else the per-user default."""
    from tfaudit.config import load_config
    from tfaudit.trail.signing import default_key_path, load_signer

    if signing_key:
        return load_signer(Path(signing_key).expanduser())
    cfg = load_config(config, Path.cwd())
    if cfg.signing.key is not None:
        return load_signer(cfg.signing.key)
    path = default_key_path(os.environ)
    if path.exists():
        return load_signer(path)
    raise UsageError("in-toto export signs its envelopes, and no signing key was found",
                     hint="pass --signing-key KEY (the ledger's Ed25519 key)")


commands = typer.Typer()  # this module's commands, added to the root app by tfaudit.cli.app


@commands.command()
def export(
    ledger: Path = typer.Argument(..., help="Ledger file to export."),
    fmt: ExportFormat = typer.Option(..., "--format", help="ocsf (OCSF 1.x API Activity), in-toto (one DSSE "
                                     "envelope per run), cloudevents (CloudEvents 1.0 JSON), native (the records)."),
    output: Optional[Path] = typer.Option(None, "--output", "-o", help="Write here instead of stdout."),
    run: Optional[str] = typer.Option(None, "--run", help="Only this run (an id or its prefix)."),
    signing_key: Optional[str] = typer.Option(None, "--signing-key", envvar="TFAUDIT_SIGNING_KEY",
                                              help="in-toto: the Ed25519 private key that signs the envelopes."),
    config: Optional[str] = typer.Option(None, "--config", envvar="TFAUDIT_CONFIG", help="Config file."),
) -> int:
    """Write every record (or, for in-toto, every run) of LEDGER as one JSON document per line."""
    from tfaudit.trail.store import open_existing

    store = open_existing(ledger)
    out: IO[str]
    out = output.open("w", encoding="utf-8") if output else sys.stdout
    count = 0
    try:
        if fmt is ExportFormat.IN_TOTO:
            from tfaudit.export.intoto import envelopes

            for env in envelopes(ledger, _signer(signing_key, config), run):
                out.write(json.dumps(env, separators=(",", ":")) + "\n")
                count += 1
        else:
            from tfaudit.export import formatter
            from tfaudit.ui.progress import TerminalProgress, tracked

            to_doc = formatter(fmt.value)
            # a bar on stderr, unless the export itself is going to the same terminal
            with TerminalProgress("exporting", enabled=bool(output) or not sys.stdout.isatty()) as progress:
                for rec in tracked(store, progress).records():
                    if run and not str((rec.get("run") or {}).get("id", "")).startswith(run):
                        continue
                    out.write(json.dumps(to_doc(rec), separators=(",", ":"), ensure_ascii=False) + "\n")
                    count += 1
    except BrokenPipeError:
        raise
    except OSError as e:
        raise InputError(f"cannot write {output or 'stdout'}: {e.strerror}") from e
    finally:
        if output:
            out.close()
    if output:
        typer.echo(f"{count} {'envelope' if fmt is ExportFormat.IN_TOTO else 'record'}(s) written to {output}", err=True)
    return 0
