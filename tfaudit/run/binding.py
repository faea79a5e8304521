"""Plan-to-apply binding: a saved plan file is tied to the `plan.recorded` record of its sha256.

`tfaudit plan -out=FILE` records the file's sha256. `tfaudit apply FILE` looks that record
up in the same ledger and links to it from `run.started` (`plan.recorded_by`). With
`require_recorded_plan = true` in `.tfaudit.hcl`, a plan file that was never recorded, was
recorded under another signing key, or changed since it was recorded is refused (exit 5)
before terraform applies anything. `plan_keys = ["plan-key.pub", ...]` lists the public keys
of other signers whose plans are accepted too (pull request jobs sign plans with a plan key
of their own, so they never hold the apply key).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tfaudit.analysis.model import Effect, Finding, Severity
from tfaudit.errors import PolicyError, VerificationError

if TYPE_CHECKING:
    from tfaudit.config import BlockContext
    from tfaudit.trail.signing import Signer, Verifier
    from tfaudit.trail.store import LedgerStore


def _obj(parent: Mapping[str, Any], key: str) -> Mapping[str, Any]:
    """parent[key] when it is an object, else an empty one (records are read defensively)."""
    value = parent.get(key)
    return value if isinstance(value, Mapping) else {}

RULE_UNRECORDED = "plan.unrecorded"


def parse_require_recorded_plan(ctx: BlockContext, entries: list[Any]) -> bool:
    """`require_recorded_plan = true|false`, a top-level attribute."""
    if len(entries) != 1 or not isinstance(entries[0], bool):
        raise ctx.error("must be set once, to true or false", hint="require_recorded_plan = true")
    return entries[0]


def parse_plan_keys(ctx: BlockContext, entries: list[Any]) -> tuple[Path, ...]:
    """`plan_keys = ["keys/plan.pub"]`: public keys whose recorded plans apply may bind to."""
    if not entries or not all(isinstance(e, str) for e in entries):  # a list attribute arrives unwrapped
        raise ctx.error("must be a list of public key files", hint='plan_keys = ["keys/plan.pub"]')
    paths = tuple(ctx.resolve(e) for e in entries)
    for path in paths:
        if not path.is_file():
            raise ctx.error(f"public key {path} does not exist", hint="write it with 'tfaudit keygen' and commit the .pub")
    return paths


def accepted_verifiers(paths: tuple[Path, ...]) -> list[Verifier]:
    from tfaudit.trail.signing import load_verifier

    return [load_verifier(p) for p in paths]


@dataclass(frozen=True)
class PlanLookup:
    """What the ledger says about a saved plan file."""

    match: Mapping[str, Any] | None  # the plan.recorded record for this sha256 (newest), signed by our key
    same_path: Mapping[str, Any] | None  # the newest plan.recorded for this path, whatever its sha256
    other_key: Mapping[str, Any] | None  # a record for this sha256 signed by a different key

    def link(self) -> dict[str, Any] | None:
        if self.match is None:
            return None
        rec = self.match
        return {
            "id": rec["id"],
            "seq": rec["chain"]["seq"],
            "run_id": (rec.get("run") or {}).get("id"),
            "time": rec.get("time"),
            "actor": (rec.get("actor") or {}).get("user"),
        }


def lookup(ledger: LedgerStore, plan_sha256: str, plan_file: Path, signer: Signer | None,
           accepted: Sequence[Verifier] = ()) -> PlanLookup:
    """The plan.recorded records for this plan, found through the ledger's plan index
    (tfaudit.trail.planindex: a lookup, not a scan of the whole ledger)."""
    import os

    from tfaudit.trail.planindex import plan_records

    match = other_key = None
    by_sha, by_path = plan_records(ledger, plan_sha256, plan_file, os.environ)
    for rec in by_sha:
        if signer is None or _signed_by(rec, signer) or any(_verifies(rec, v) for v in accepted):
            match = rec
        else:
            other_key = rec
    return PlanLookup(match, by_path[-1] if by_path else None, other_key)


def _signed_by(rec: Mapping[str, Any], signer: Signer) -> bool:
    """The record carries our key id and, where we hold the key, a signature that checks."""
    from tfaudit.trail.recordsig import verify_record
    from tfaudit.trail.signing import Verifier, signer_key_id

    if signer_key_id(_obj(rec, "signature")) != signer.key_id:
        return False
    key = getattr(signer, "private_key", None)
    public = key.public_key() if key is not None else getattr(signer, "public_key", None)  # KMS: the fetched key
    if public is None:
        return True  # a signer without a public key at hand: the key id is what we can check locally
    try:
        verify_record(rec, {signer.key_id: Verifier(public, signer.key_id, "signing key")})
    except (VerificationError, ValueError):
        return False
    return True


def _verifies(rec: Mapping[str, Any], verifier: Verifier) -> bool:
    from tfaudit.trail.recordsig import verify_record

    try:
        verify_record(rec, {verifier.key_id: verifier})
    except (VerificationError, ValueError):
        return False
    return True


def refusal(found: PlanLookup, plan_file: str, plan_sha256: str) -> PolicyError:
    """The error for `require_recorded_plan = true` when no usable record exists."""
    hint = "run 'tfaudit plan -out=FILE' and apply that file unchanged"
    if found.other_key is not None:
        return PolicyError(f"plan file {plan_file} was recorded under a different signing key "
                           f"({(found.other_key.get('signature') or {}).get('key_id')}); require_recorded_plan refuses it",
                           hint=hint + " with this key")
    if found.same_path is not None:
        return PolicyError(f"plan file {plan_file} changed since 'tfaudit plan' recorded it at "
                           f"{found.same_path.get('time')} (sha256 now {plan_sha256[:12]}..., recorded "
                           f"{str((found.same_path.get('plan') or {}).get('sha256'))[:12]}...); require_recorded_plan refuses it",
                           hint=hint)
    return PolicyError(f"plan file {plan_file} (sha256 {plan_sha256[:12]}...) was never recorded by 'tfaudit plan'; "
                       "require_recorded_plan refuses it", hint=hint)


_WHY = "A saved plan applied under require_recorded_plan must be one 'tfaudit plan' recorded, unchanged."


def finding(error: PolicyError) -> Finding:
    """The refusal as a finding, of the one type every gate gives (tfaudit.run.gates)."""
    return Finding(RULE_UNRECORDED, Severity.HIGH, None, error.message, Effect.DENY, "binding", _WHY)
