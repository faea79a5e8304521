"""Signed checkpoints of the ledger's Merkle tree, anchored where the ledger's writer cannot rewrite them.

A hash chain catches edits inside the ledger, not someone who cuts off its newest records or
rewrites the whole file with the signing key. After every run tfaudit signs a checkpoint (the
tree size and RFC 9162 root of the ledger) and stores it, with a consistency proof from the
previous checkpoint, in destinations apart from the ledger: a directory, an S3 prefix with
Object Lock, a webhook. `tfaudit verify --checkpoints SRC` then finds a ledger shorter than a
signed checkpoint (truncated), a ledger whose tree no longer has a signed root (rewritten), and
two checkpoints that do not extend one another (a fork).

Formats: the checkpoint is a C2SP tlog-checkpoint (origin, tree size, base64 root hash) in a
C2SP signed note, signed with the ledger's Ed25519 key:

    tfaudit.dev/ledger/1f0c2a9be44d7e31
    27
    q0ZqOJ3cyZsjV+Jh+0g+i2CkZmHG5q9yUN5sOUa9Uco=

    — tfaudit.dev/ledger/1f0c2a9be44d7e31 mF0yHh...base64(key hash (4 bytes) || signature)...

The package, one job per module: `note` (the signed-note format), `destinations` (where
checkpoints are kept), `settings` (the config block), `anchor` (signing one after a run),
`check` (verifying a ledger against them).
"""

from tfaudit.trail.checkpoints.anchor import Anchored, anchor, anchor_after_run, cache_path
from tfaudit.trail.checkpoints.check import CheckpointProblem, CheckpointProblemKind, CheckpointReport, check_ledger
from tfaudit.trail.checkpoints.destinations import (DESTINATIONS, CheckpointStore, DirStore, LockMode, S3Store,
                                                    WebhookStore, store_from_location)
from tfaudit.trail.checkpoints.note import (CHECKPOINT_SUFFIX, DEFAULT_ORIGIN_PREFIX, MAX_NOTE_BYTES, PROOF_SUFFIX,
                                            Checkpoint, default_origin, note_key_id, open_checkpoint, open_note,
                                            sign_note, signer_public_key)
from tfaudit.trail.checkpoints.settings import (CheckpointFailure, CheckpointSettings, DestinationSpec,
                                                parse_checkpoints, resolve_settings)
from tfaudit.trail.store import read_lines

__all__ = [
    "CHECKPOINT_SUFFIX", "DEFAULT_ORIGIN_PREFIX", "DESTINATIONS", "MAX_NOTE_BYTES", "PROOF_SUFFIX", "Anchored",
    "Checkpoint", "CheckpointFailure", "CheckpointProblem", "CheckpointProblemKind", "CheckpointReport",
    "CheckpointSettings", "CheckpointStore", "DestinationSpec", "DirStore", "LockMode", "S3Store", "WebhookStore",
    "anchor", "anchor_after_run", "cache_path", "check_ledger", "default_origin", "note_key_id", "open_checkpoint",
    "open_note", "parse_checkpoints", "read_lines", "resolve_settings", "sign_note", "signer_public_key",
    "store_from_location",
]
