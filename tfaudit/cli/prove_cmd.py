"""tfaudit prove inclusion|consistency, and tfaudit verify-proof (which needs no ledger)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, List, Optional

import typer

from tfaudit.errors import ExitCode, InputError, UsageError, VerificationError

if TYPE_CHECKING:
    from tfaudit.trail.signing import Verifier

prove_app = typer.Typer(help="Make proofs about a ledger that anyone can check with 'tfaudit verify-proof'.",
                        no_args_is_help=True)

CheckpointsOpt = typer.Option(None, "--checkpoints",
                              help="Checkpoint location (DIR or s3://BUCKET/PREFIX): embed the anchored checkpoint.")
KeyOpt = typer.Option(None, "--signing-key", help="Without --checkpoints: sign a checkpoint now with this Ed25519 key.")
OutputOpt = typer.Option(None, "--output", "-o", help="Write the proof here instead of stdout.")


def _anchored(src: str, size: int | None, lines: list[bytes], at_least: int = 0) -> str:
    """The note of the checkpoint in src at `size` (or the newest one covering `at_least`) that this ledger matches."""
    from tfaudit.trail import merkle
    from tfaudit.trail.checkpoints import CHECKPOINT_SUFFIX, Checkpoint, store_from_location

    store = store_from_location(src, os.environ)
    candidates: list[tuple[Checkpoint, str]] = []
    for name in store.names():
        if not name.endswith(CHECKPOINT_SUFFIX):
            continue
        note = store.get(name).decode("utf-8", "replace")
        try:
            cp = Checkpoint.parse(note[: note.rfind("\n\n") + 1], what=name)
        except VerificationError:
            continue
        if (size is None and cp.size >= at_least) or cp.size == size:
            candidates.append((cp, note))
    if not candidates:
        want = f"of tree size {size}" if size is not None else f"covering record seq {at_least}"
        raise InputError(f"no checkpoint {want} in {store.describe()}",
                         hint="pick a size that has a checkpoint, or sign one now with --signing-key instead of --checkpoints")
    candidates.sort(key=lambda c: c[0].size, reverse=True)
    chosen = [c for c in candidates if c[0].size == candidates[0][0].size]
    if candidates[0][0].size > len(lines):
        raise VerificationError(f"the ledger has {len(lines)} records but the checkpoint signed {candidates[0][0].size}: "
                                "it was truncated", hint="run 'tfaudit verify LEDGER --public-key PUB --checkpoints SRC'")
    root = merkle.Tree.from_data(lines[: chosen[0][0].size]).root()
    for cp, note in chosen:
        if cp.root == root:
            return note
    raise VerificationError(f"the ledger's first {chosen[0][0].size} records do not match the checkpoint signed for them",
                            hint="run 'tfaudit verify LEDGER --public-key PUB --checkpoints SRC'")


def _fresh(signing_key: str, lines: list[bytes], size: int) -> str:
    from tfaudit.trail import merkle
    from tfaudit.trail.checkpoints import Checkpoint, default_origin
    from tfaudit.trail.signing import load_signer

    signer = load_signer(Path(signing_key).expanduser())
    return Checkpoint(default_origin(lines[0]), size, merkle.Tree.from_data(lines[:size]).root()).sign(signer)


def _note(src: str | None, signing_key: str | None, lines: list[bytes], size: int) -> str | None:
    if src:
        return _anchored(src, size, lines)
    if signing_key:
        return _fresh(signing_key, lines, size)
    return None


def _unsigned_notice() -> None:
    typer.echo("tfaudit: note: the proof carries no signed checkpoint (no --checkpoints or --signing-key), "
               "so a verifier can check its arithmetic but not who vouches for the root", err=True)


def _emit(doc: dict[str, object], output: Path | None) -> None:
    text = json.dumps(doc, indent=2) + "\n"
    if output:
        try:
            output.write_text(text)
        except OSError as e:
            raise InputError(f"cannot write {output}: {e.strerror}") from e
        typer.echo(f"proof written to {output}", err=True)
    else:
        typer.echo(text, nl=False)


def _lines(ledger: Path) -> list[bytes]:
    from tfaudit.trail.store import read_lines

    lines = read_lines(ledger)
    if not lines:
        raise InputError(f"ledger {ledger} is empty")
    return lines


@prove_app.command("inclusion")
def inclusion(
    ledger: Path = typer.Argument(..., help="Ledger file."),
    seq: int = typer.Option(..., "--seq", help="The record's chain.seq (its line number)."),
    size: Optional[int] = typer.Option(None, "--size", help="Tree size to prove against (default: the newest "
                                       "checkpoint covering the record, or the whole ledger)."),
    checkpoints: Optional[str] = CheckpointsOpt,
    signing_key: Optional[str] = KeyOpt,
    output: Optional[Path] = OutputOpt,
) -> int:
    """Prove that record SEQ is in the ledger whose root a checkpoint signed."""
    from tfaudit.trail.proofs import inclusion_proof

    lines = _lines(ledger)
    if seq < 1 or seq > len(lines):
        raise UsageError(f"--seq {seq} is outside the ledger (1..{len(lines)})")
    note: str | None = None
    if checkpoints:
        from tfaudit.trail.checkpoints import Checkpoint

        note = _anchored(checkpoints, size, lines, at_least=seq)
        size = Checkpoint.parse(note[: note.rfind("\n\n") + 1]).size
    else:
        size = size or len(lines)
        note = _note(None, signing_key, lines, size) if 1 <= size <= len(lines) else None
    doc = inclusion_proof(lines, seq, size, note)
    if note is None:
        _unsigned_notice()
    _emit(doc, output)
    return 0


@prove_app.command("consistency")
def consistency(
    ledger: Path = typer.Argument(..., help="Ledger file."),
    size1: int = typer.Option(..., "--from", help="The earlier tree size."),
    size2: Optional[int] = typer.Option(None, "--to", help="The later tree size (default: the whole ledger)."),
    checkpoints: Optional[str] = CheckpointsOpt,
    signing_key: Optional[str] = KeyOpt,
    output: Optional[Path] = OutputOpt,
) -> int:
    """Prove that the ledger of --from records is a prefix of the ledger of --to records."""
    from tfaudit.trail.proofs import consistency_proof

    lines = _lines(ledger)
    size2 = size2 or len(lines)
    if not 1 <= size1 <= size2 <= len(lines):
        raise UsageError(f"need 1 <= --from ({size1}) <= --to ({size2}) <= {len(lines)} (the ledger's size)")
    notes = (_note(checkpoints, signing_key, lines, size1), _note(checkpoints, signing_key, lines, size2))
    if None in notes:
        _unsigned_notice()
    _emit(consistency_proof(lines, size1, size2, notes), output)
    return 0


commands = typer.Typer()  # this module's commands, added to the root app by tfaudit.cli.app


commands.add_typer(prove_app, name="prove")

@commands.command("verify-proof")
def verify_proof(
    proof_file: Path = typer.Argument(..., help="A proof file written by 'tfaudit prove'."),
    public_key: Optional[List[Path]] = typer.Option(None, "--public-key", envvar="TFAUDIT_PUBLIC_KEY",
                                                    help="Public key(s) that must have signed the checkpoint(s) "
                                                    "and the record (repeatable)."),
) -> int:
    """Check a proof without the ledger; with --public-key, also who signed its root."""
    from tfaudit.trail.proofs import verify_proof as check
    from tfaudit.trail.signing import load_verifier

    try:
        doc = json.loads(proof_file.read_text("utf-8"))
    except FileNotFoundError:
        raise InputError(f"proof file {proof_file} does not exist") from None
    except (OSError, UnicodeDecodeError, ValueError) as e:
        raise InputError(f"proof file {proof_file} is not readable JSON: {e}") from None
    verifiers = [load_verifier(p) for p in public_key or []]
    result = check(doc, verifiers)
    typer.echo(f"OK: {result.summary}")
    for line in result.details:
        typer.echo(f"  {line}")
    if not result.authenticated:
        typer.echo("  not authenticated: pass --public-key PUB to check who signed the root")
    return int(ExitCode.OK)


# --- `tfaudit verify --checkpoints SRC / --dsse FILE` (called from verify_cmd) ----------------------
class VerifyExtras:
    """What `tfaudit verify` adds for checkpoints and DSSE envelopes: lines to print, JSON, ok."""

    def __init__(self) -> None:
        self.ok = True
        self.lines: list[str] = []
        self.data: dict[str, object] = {}


def verify_extras(ledger: Path | str | None, verifiers: list[Verifier], checkpoints: str | None,
                  dsse: Path | None) -> VerifyExtras:
    out = VerifyExtras()
    if checkpoints:
        if ledger is None:
            raise UsageError("--checkpoints checks a ledger", hint="give the LEDGER argument too")
        from tfaudit.trail.checkpoints import check_ledger, store_from_location

        store = store_from_location(checkpoints, os.environ)
        cp = check_ledger(ledger, store, verifiers)
        out.data["checkpoints"] = cp.as_dict()
        for p in cp.problems:
            out.lines.append(f"{ledger}: checkpoints: {p.kind.value}: {p.where}: {p.message}")
        if cp.ok and cp.latest is not None:
            pending = cp.ledger_size - cp.latest.size
            out.lines.append(f"OK: the ledger extends all {cp.checkpoints} checkpoint(s) in {cp.source} (latest: "
                             f"{cp.latest.size} records, origin {cp.latest.origin})"
                             + (f"; {pending} newer record(s) not anchored yet" if pending else ""))
        else:
            out.ok = False
            out.lines.append(f"FAILED: {len(cp.problems)} checkpoint problem(s) against {cp.source}")
    if dsse is not None:
        from tfaudit.export.intoto import verify_envelope_file

        env = verify_envelope_file(dsse, verifiers, Path(ledger) if ledger is not None else None)
        out.data["dsse"] = env.as_dict()
        for n, msg in env.problems:
            out.lines.append(f"{dsse}:{n}: dsse: {msg}")
        if env.ok:
            out.lines.append(f"OK: {env.envelopes} DSSE envelope(s) verified ({env.records} records in {len(env.runs)} runs"
                             + (", all in the ledger)" if ledger is not None else ")"))
        else:
            out.ok = False
            out.lines.append(f"FAILED: {len(env.problems)} problem(s) in {env.envelopes} DSSE envelope(s) in {dsse}")
    return out
