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
from tfaudit.trail import frontier, merkle
from tfaudit.trail.checkpoints.destinations import CheckpointStore
from tfaudit.trail.checkpoints.note import NAME_RE, Checkpoint, default_origin, open_checkpoint, signer_public_key
from tfaudit.trail.checkpoints.settings import CheckpointFailure, CheckpointSettings, resolve_settings
from tfaudit.trail.signing import Signer, Verifier, line_digest
from tfaudit.trail.store import LedgerStore, LedgerView, open_store, read_lines, sidecar_path

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



@dataclass(frozen=True)
class _Grown:
    """The ledger as a tree, its first line (names the log) and the digest of its last line."""

    tree: merkle.Tree
    first_line: bytes
    last_digest: str


def _strip(raw: bytes) -> bytes:
    return raw[:-1] if raw.endswith(b"\n") else raw


def _whole(view: LedgerView) -> _Grown | None:
    """Every line hashed: the first anchor, or when the saved frontier cannot be used."""
    lines = read_lines(view)
    if not lines:
        return None
    return _Grown(merkle.Tree.from_data(lines), lines[0], line_digest(lines[-1]))


def _extended(view: LedgerView, saved: frontier.Saved) -> _Grown | None:
    """The saved frontier plus the lines after it: O(new lines + log n). None when the frontier's
    last line is no longer where it was, with the same bytes."""
    size = saved.frontier.size
    lines = view.lines(size)
    at = next(lines, None)
    if at is None or at[0] != size or line_digest(_strip(at[1])) != saved.line_digest:
        return None
    last = _strip(at[1])
    new = []
    for _, raw in lines:
        last = _strip(raw)
        new.append(merkle.leaf_hash(last))
    first = next(view.lines(1), None)
    if first is None:
        return None
    return _Grown(frontier.ExtendedTree(saved.frontier, new), _strip(first[1]), line_digest(last))


def _grow(ledger: LedgerStore, earlier: Sequence[Checkpoint],
          env: Mapping[str, str]) -> tuple[_Grown | None, Path, LedgerView]:
    """The ledger's tree from a snapshot at least as long as every earlier checkpoint (another run may
    have appended and anchored since this one's append), from the saved frontier when it fits."""
    want = max((c.size for c in earlier), default=0)
    view = ledger.snapshot()
    if view.tail().seq < want:
        view = ledger.snapshot()
    path = sidecar_path(ledger, "merkle", env)
    saved = frontier.load(path)
    if saved is not None and saved.frontier.size <= min(view.tail().seq, want or saved.frontier.size) \
            and all(c.root == saved.frontier.root() for c in earlier if c.size == saved.frontier.size):
        grown = _extended(view, saved)
        if grown is not None:
            return grown, path, view
    return _whole(view), path, view


def _check_earlier(tree: merkle.Tree, earlier: Sequence[Checkpoint], hint: str) -> None:
    """Refuse to sign over removed records or rewritten history. Checkpoints older than a saved
    frontier were checked when it was saved (it is only used when its last line is unchanged)."""
    base = tree.base if isinstance(tree, frontier.ExtendedTree) else 0
    for cp in earlier:
        if cp.size > tree.size:
            raise DeliveryError(f"the ledger has {tree.size} records but a checkpoint signed {cp.size}: "
                                "records were removed; no new checkpoint was signed", hint=hint)
        if cp.size >= base and tree.root(cp.size) != cp.root:
            raise DeliveryError(f"the ledger's first {cp.size} records no longer match the checkpoint "
                                "signed for them: history was rewritten; no new checkpoint was signed", hint=hint)


def anchor(ledger: LedgerStore | Path, signer: Signer, settings: CheckpointSettings, env: Mapping[str, str]) -> Anchored:
    """Sign a checkpoint of the ledger as it is now and store it with a consistency proof from the
    previous one. Refuses to sign when the ledger no longer extends the previous checkpoint. Costs
    the records since the last anchor (tfaudit.trail.frontier), not the ledger's length."""
    from tfaudit.trail.signing import key_id_for

    store = ledger if isinstance(ledger, LedgerStore) else open_store(ledger, env)
    public = signer_public_key(signer)
    own = [Verifier(public, key_id_for(public), "signing key")]
    stores = settings.stores(env)
    earlier = _earlier(store, stores, own)
    grown, saved_at, view = _grow(store, earlier, env)
    try:
        return _anchor_grown(store, grown, earlier, saved_at, settings, signer, stores)
    except frontier.MissingNode:  # a proof reached below the saved frontier: hash the whole ledger
        return _anchor_grown(store, _whole(view), earlier, saved_at, settings, signer, stores)


def _anchor_grown(store: LedgerStore, grown: _Grown | None, earlier: Sequence[Checkpoint], saved_at: Path,
                  settings: CheckpointSettings, signer: Signer, stores: Sequence[CheckpointStore]) -> Anchored:
    if grown is None:
        return Anchored(None)
    tree = grown.tree
    where = next((s.describe() for s in stores if s.readable), "SRC")
    _check_earlier(tree, earlier, f"run 'tfaudit verify {store.url} --public-key PUB --checkpoints {where}' to see what changed")
    prev = max(earlier, key=lambda c: c.size, default=None)
    proof_hashes = tree.consistency_proof(prev.size) if prev is not None and prev.size < tree.size else []
    new_frontier = tree.extended_frontier() if isinstance(tree, frontier.ExtendedTree) else \
        frontier.Frontier.of_leaves(tree.leaves)
    frontier.save(saved_at, frontier.Saved(new_frontier, grown.last_digest))
    proof: dict[str, Any] | None = None
    if prev is not None:
        if prev.size == tree.size:
            return Anchored(prev)
        proof = {"from_size": prev.size, "from_root": prev.root_b64, "to_size": tree.size,
                 "to_root": base64.b64encode(new_frontier.root()).decode(),
                 "hashes": [base64.b64encode(h).decode() for h in proof_hashes]}
    origin = settings.origin or default_origin(grown.first_line)
    return _sign_and_store(store, Checkpoint(origin, tree.size, new_frontier.root()), signer, stores, proof)


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
