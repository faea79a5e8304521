"""tfaudit keygen: a new Ed25519 signing key pair."""

from __future__ import annotations

from pathlib import Path

import typer


commands = typer.Typer()  # this module's commands, added to the root app by tfaudit.cli.app


@commands.command()
def keygen(
    path: Path = typer.Argument(..., help="Where to write the private key; the public key goes to PATH.pub."),
    force: bool = typer.Option(False, "--force", help="Overwrite an existing key."),
) -> int:
    """Write an Ed25519 private key (mode 0600) at PATH and its public key at PATH.pub."""
    from tfaudit.trail.signing import generate_keypair, load_signer

    priv, pub = generate_keypair(path, overwrite=force)
    signer = load_signer(priv)
    typer.echo(f"private key: {priv} (keep it secret)\npublic key:  {pub}\nkey id:      {signer.key_id}")
    return 0
