"""One record's signature, checked strictly: every byte of the line is signed or rejected.

See tfaudit.trail.signing for the two signature versions. Here the rules are enforced:
the signature object holds exactly the members its version allows; `alg` is the given
key's algorithm; `value` is canonical base64 (no stray padding bits) of exactly one valid
spelling (an Ed25519 signature of 64 bytes; a strict DER ECDSA signature with a low S for
version 2); and the signature verifies over the record's payload.

When the line's bytes are at hand the payload is cut out of them (the line without its
signature value, or for version 1 without its signature member) instead of being
re-serialized: a signature that verifies over those bytes proves every byte of the line
was written by the key holder, and costs no canonicalization.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Mapping
from typing import Any

from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature, encode_dss_signature

from tfaudit.errors import VerificationError
from tfaudit.trail.signing import (
    ECDSA_P256_SHA256,
    ED25519,
    P256_ORDER,
    SIGNATURE_VERSION,
    V1_FIELDS,
    V2_FIELDS,
    Verifier,
    signing_payload,
)

_B64 = re.compile(r"[A-Za-z0-9+/]*={0,2}")


class SignatureProblem(VerificationError):
    """A record's signature is missing, malformed, by an unknown key, or does not verify."""

    def __init__(self, message: str, *, unknown_key: bool = False) -> None:
        super().__init__(message)
        self.unknown_key = unknown_key


def strict_b64decode(text: Any) -> bytes:
    """Base64 with padding, in the one spelling b64encode gives (padding bits zero), or raise."""
    if not isinstance(text, str) or len(text) % 4 or not _B64.fullmatch(text):
        raise SignatureProblem("signature value is not base64")
    try:
        raw = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise SignatureProblem("signature value is not base64") from None
    if base64.b64encode(raw).decode("ascii") != text:
        raise SignatureProblem("signature value is not canonical base64 (its padding bits were changed)")
    return raw


def _check_header(sig: Mapping[str, Any], verifier: Verifier) -> int:
    """The signature's version, after checking its members and algorithm; raise when they are wrong."""
    version = sig.get("v")
    if version is None:
        extra = sorted(set(sig) - V1_FIELDS)
        if extra:
            raise SignatureProblem(f"version-1 signature with unsigned member(s) {', '.join(extra)} "
                                   "(version 1 signs only alg, key_id and value)")
        if verifier.algorithm != ED25519 or sig.get("alg") != ED25519:
            raise SignatureProblem("version-1 signatures are accepted only for Ed25519 keys "
                                   f"(alg {sig.get('alg')!r}); version 1 leaves ECDSA signatures malleable")
        return 1
    if type(version) is not int or version != SIGNATURE_VERSION:
        raise SignatureProblem(f"unknown signature version {version!r} (this tfaudit knows 1 and {SIGNATURE_VERSION})")
    extra = sorted(set(sig) - V2_FIELDS)
    if extra:
        raise SignatureProblem(f"unknown member(s) {', '.join(extra)} in signature")
    if "kms_key" in sig and not isinstance(sig["kms_key"], str):
        raise SignatureProblem("signature.kms_key is not a string")
    if sig.get("alg") != verifier.algorithm:
        raise SignatureProblem(f"signature.alg is {sig.get('alg')!r}, but key {verifier.key_id} "
                               f"is an {verifier.algorithm} key")
    return version


def _check_value(raw: bytes, verifier: Verifier, version: int) -> None:
    if verifier.algorithm == ED25519:
        if len(raw) != 64:
            raise SignatureProblem(f"signature value is {len(raw)} bytes, not an Ed25519 signature (64)")
        return
    try:
        r, s = decode_dss_signature(raw)
    except ValueError:
        raise SignatureProblem("signature value is not a DER ECDSA signature") from None
    if encode_dss_signature(r, s) != raw:
        raise SignatureProblem("signature value is not strict DER")
    if version >= 2 and s > P256_ORDER // 2:
        raise SignatureProblem("ECDSA signature has a high S (a second spelling of a signature: refused)")


def _payload_from_line(line: bytes, sig: Mapping[str, Any], version: int) -> bytes | None:
    """The signed bytes cut out of the line itself, or None when the line is not in the written shape."""
    if version == 2:
        member = b',"value":"' + str(sig["value"]).encode("ascii") + b'"}'
        return line.replace(member, b"}") if line.count(member) == 1 else None
    if not all(isinstance(sig.get(k), str) for k in V1_FIELDS):
        return None
    member = (b',"signature":{"alg":' + json.dumps(sig["alg"]).encode() + b',"key_id":'
              + json.dumps(sig["key_id"]).encode() + b',"value":' + json.dumps(sig["value"]).encode() + b"}")
    return line.replace(member, b"") if line.count(member) == 1 else None


def verify_record(record: Mapping[str, Any], by_id: Mapping[str, Verifier], line: bytes | None = None) -> tuple[Verifier, bool]:
    """Check `record`'s signature against the keys `by_id` (key id -> Verifier); raise SignatureProblem.

    Returns the key that signed it and whether the signature was checked over the line's own
    bytes (`line`, without its newline): then the line is exactly what was signed. With a
    version-1 signature, or without the line, the payload is the canonical form of the record
    and the caller must still check that the line is canonical.
    """
    sig = record.get("signature")
    if not isinstance(sig, Mapping):
        raise SignatureProblem("record has no signature")
    key_id = sig.get("key_id")
    verifier = by_id.get(key_id) if isinstance(key_id, str) else None
    if verifier is None:
        raise SignatureProblem(f"signed by key {key_id}, which is not among the given public keys", unknown_key=True)
    version = _check_header(sig, verifier)
    raw = strict_b64decode(sig.get("value"))
    _check_value(raw, verifier, version)
    payload = _payload_from_line(line, sig, version) if line is not None else None
    from_line = payload is not None and version == 2
    if payload is None:
        payload = signing_payload(record)
    try:
        verifier.verify(raw, payload)
    except VerificationError:
        raise SignatureProblem("signature does not match the record (the record was edited)") from None
    return verifier, from_line
