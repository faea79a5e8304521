"""Anchoring: after a run, sign a checkpoint of the ledger as it is and store it in every destination."""

from __future__ import annotations

import base64
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tfaudit.logs import get_logger

from tfaudit.config import Config
from tfaudit.errors import DeliveryError, ExitCode, InputError, LedgerError, UsageError, VerificationError
from tfaudit.trail import merkle
from tfaudit.trail.checkpoints.destinations import CheckpointStore
from tfaudit.trail.checkpoints.note import NAME_RE, Checkpoint, default_origin, open_checkpoint, signer_public_key
from tfaudit.trail.checkpoints.settings import CheckpointFailure, CheckpointSettings, resolve_settings
from tfaudit.trail.signing import Signer, Verifier
from tfaudit.trail.store import LedgerStore, open_store, read_lines

log = get_logger("tfaudit")


@dataclass(frozen=True)
class Anchored:
    checkpoint: Checkpoint | None
    written: tuple[str, ...] = ()
    failed: tuple[str, ...] = ()  # "destination: error"


def _latest_signed(store: CheckpointStore, verifiers: Sequence[Verifier]) -> Checkpoint | None:
    for name in sorted((n for n in store.names() if NAME_RE.match(n)), reverse=True):
        try:
            return open_checkpoint(store.get(name), verifiers, what=name)
        except VerificationError:
            continue  # not ours, or damaged: `tfaudit verify --checkpoints` reports it
    return None


def cache_path(ledger: LedgerStore) -> Path | None:
    """The copy of the newest checkpoint kept beside a file ledger (None for shared stores)."""
    path = ledger.local_path
    return None if path is None else path.with_name(path.name + ".checkpoint")


def _earlier(ledger: LedgerStore, stores: Sequence[CheckpointStore], own: Sequence[Verifier]) -> list[Checkpoint]:
    """What this key signed before: the newest checkpoint in the first destination that can be read
    (a missing directory or a write-only S3 role cannot), and the copy cached beside the ledger."""
    stored: Checkpoint | None = None
    for store in (s for s in stores if s.readable):
        try:
            stored = _latest_signed(store, own)
            break
        except InputError:
            continue
    cached: Checkpoint | None = None
    cache = cache_path(ledger)
    if cache is not None and cache.exists():
        try:
            cached = open_checkpoint(cache.read_bytes(), own, what=str(cache))
        except (OSError, VerificationError):
            cached = None
    return [c for c in (stored, cached) if c is not None]



def _lines_covering(ledger: LedgerStore, earlier: Sequence[Checkpoint]) -> list[bytes]:
    """The lines of a snapshot at least as long as every earlier checkpoint, when the ledger is: another
    run may have appended and anchored between this run's append and now."""
    lines = read_lines(ledger.snapshot())
    if len(lines) < max((c.size for c in earlier), default=0):
        lines = read_lines(ledger.snapshot())
    return lines


def anchor(ledger: LedgerStore | Path, signer: Signer, settings: CheckpointSettings, env: Mapping[str, str]) -> Anchored:
    """Sign a checkpoint of the ledger as it is now and store it with a consistency proof from the
    previous one. Refuses to sign when the ledger no longer extends the previous checkpoint."""
    from tfaudit.trail.signing import key_id_for

    store = ledger if isinstance(ledger, LedgerStore) else open_store(ledger, env)
    public = signer_public_key(signer)
    own = [Verifier(public, key_id_for(public), "signing key")]
    stores = settings.stores(env)
    earlier = _earlier(store, stores, own)
    lines = _lines_covering(store, earlier)
    if not lines:
        return Anchored(None)
    origin = settings.origin or default_origin(lines[0])
    tree = merkle.Tree.from_data(lines)
    where = next((s.describe() for s in stores if s.readable), "SRC")
    hint = f"run 'tfaudit verify {store.url} --public-key PUB --checkpoints {where}' to see what changed"
    for cp in earlier:
        if cp.size > tree.size:
            raise DeliveryError(f"the ledger has {tree.size} records but a checkpoint signed {cp.size}: "
                                "records were removed; no new checkpoint was signed", hint=hint)
        if tree.root(cp.size) != cp.root:
            raise DeliveryError(f"the ledger's first {cp.size} records no longer match the checkpoint "
                                "signed for them: history was rewritten; no new checkpoint was signed", hint=hint)
    prev = max(earlier, key=lambda c: c.size, default=None)
    proof: dict[str, Any] | None = None
    if prev is not None:
        if prev.size == tree.size:
            return Anchored(prev)
        proof = {"from_size": prev.size, "from_root": prev.root_b64, "to_size": tree.size,
                 "to_root": base64.b64encode(tree.root()).decode(),
                 "hashes": [base64.b64encode(h).decode() for h in tree.consistency_proof(prev.size)]}
    return _sign_and_store(store, Checkpoint(origin, tree.size, tree.root()), signer, stores, proof)


def _sign_and_store(ledger: LedgerStore, cp: Checkpoint, signer: Signer, stores: Sequence[CheckpointStore],
                    proof: Mapping[str, Any] | None) -> Anchored:
    note = cp.sign(signer)
    written: list[str] = []
    failed: list[str] = []
    for dest in stores:
        try:
            dest.store(cp, note, proof)
            written.append(dest.describe())
        except DeliveryError as e:
            failed.append(f"{dest.describe()}: {e}")
    cache = cache_path(ledger)
    if cache is not None:
        try:
            cache.write_text(note)
        except OSError as e:
            log.warning("checkpoint.cache_unwritable", path=str(cache), error=e.strerror)
    log.info("checkpoint.signed", size=cp.size, root=cp.root_b64, written=written, failed=failed)
    return Anchored(cp, tuple(written), tuple(failed))


def anchor_after_run(ledger: LedgerStore | Path, signer: Signer, option: str | None, env: Mapping[str, str],
                     cfg: Config, warn: Callable[[str], None]) -> int:
    """Called by the runner after a run's records are in the ledger: 0, or the exit code when
    checkpoints { on_failure = "fail" } and a checkpoint could not be signed or stored."""
    settings = resolve_settings(option, env, cfg)
    if settings is None:
        return 0
    try:
        result = anchor(ledger, signer, settings, env)
        problems = list(result.failed)
    except (DeliveryError, LedgerError, UsageError) as e:
        problems = [str(e)]
    fail = settings.on_failure is CheckpointFailure.FAIL
    for p in problems:
        warn(f"tfaudit: {'error' if fail else 'warning'}: checkpoint: {p}")
    if problems and fail:
        return int(ExitCode.AUDIT_WRITE)
    return 0
