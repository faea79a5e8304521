"""One record's signature, checked strictly: every byte of the line is signed or rejected.

See tfaudit.trail.signing for the signature versions. Here the rules are enforced:
the signature object holds exactly the members its version allows; `alg` is the given
key's algorithm; `value` is canonical base64 (no stray padding bits) of exactly one valid
spelling (an Ed25519 signature of 64 bytes; a strict DER ECDSA signature with a low S for
version 2); and the signature verifies over the record's payload.

When the line's bytes are at hand the payload is cut out of them (the line without its
signature value, or for version 1 without its signature member) instead of being
re-serialized: a signature that verifies over those bytes proves every byte of the line
was written by the key holder, and costs no canonicalization.

Version 3 (tfaudit.trail.certsig) adds the certificate: exactly its members, each of its type,
signed by one of the given keys (checked once per certificate and remembered), the record's
key the one it certifies, and the record's `chain.seq` (and for the first, `chain.prev`)
within what it binds.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Mapping
from typing import Any

from cryptography.hazmat.primitives.asymmetric import ed25519
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature, encode_dss_signature

from tfaudit.errors import VerificationError
from tfaudit.trail.certsig import certificate_payload
from tfaudit.trail.signing import (
    CERT_FIELDS,
    CERT_PURPOSE,
    CERTIFIED_VERSION,
    ED25519,
    P256_ORDER,
    SIGNATURE_VERSION,
    V1_FIELDS,
    V2_FIELDS,
    V3_FIELDS,
    Verifier,
    key_id_for,
    signing_payload,
)

_B64 = re.compile(r"[A-Za-z0-9+/]*={0,2}")
# An Ed25519 signature's one spelling: 64 bytes, the last one's 4 padding bits zero (A, Q, g, w)
_B64_ED25519 = re.compile(r"[A-Za-z0-9+/]{85}[AQgw]==")


class SignatureProblem(VerificationError):
    """A record's signature is missing, malformed, by an unknown key, or does not verify."""

    def __init__(self, message: str, *, unknown_key: bool = False) -> None:
        super().__init__(message)
        self.unknown_key = unknown_key


def strict_b64decode(text: Any, what: str = "signature value") -> bytes:
    """Base64 with padding, in the one spelling b64encode gives (padding bits zero), or raise."""
    if type(text) is str and _B64_ED25519.fullmatch(text):
        return binascii.a2b_base64(text)  # canonical by its shape: what the checks below would return
    if not isinstance(text, str) or len(text) % 4 or not _B64.fullmatch(text):
        raise SignatureProblem(f"{what} is not base64")
    try:
        raw = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise SignatureProblem(f"{what} is not base64") from None
    if base64.b64encode(raw).decode("ascii") != text:
        raise SignatureProblem(f"{what} is not canonical base64 (its padding bits were changed)")
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
        raise SignatureProblem(f"unknown signature version {version!r} "
                               f"(this tfaudit knows 1, {SIGNATURE_VERSION} and {CERTIFIED_VERSION})")
    extra = sorted(set(sig) - V2_FIELDS) if not sig.keys() <= V2_FIELDS else []
    if extra:
        raise SignatureProblem(f"unknown member(s) {', '.join(extra)} in signature")
    if "kms_key" in sig and not isinstance(sig["kms_key"], str):
        raise SignatureProblem("signature.kms_key is not a string")
    if sig.get("alg") != verifier.algorithm:
        raise SignatureProblem(f"signature.alg is {sig.get('alg')!r}, but key {verifier.key_id} "
                               f"is an {verifier.algorithm} key")
    return version


def _check_value(raw: bytes, verifier: Verifier, version: int, what: str = "signature value") -> None:
    if verifier.algorithm == ED25519:
        if len(raw) != 64:
            raise SignatureProblem(f"{what} is {len(raw)} bytes, not an Ed25519 signature (64)")
        return
    try:
        r, s = decode_dss_signature(raw)
    except ValueError:
        raise SignatureProblem(f"{what} is not a DER ECDSA signature") from None
    if encode_dss_signature(r, s) != raw:
        raise SignatureProblem(f"{what} is not strict DER")
    if version >= 2 and s > P256_ORDER // 2:
        raise SignatureProblem("ECDSA signature has a high S (a second spelling of a signature: refused)")


def _payload_from_line(line: bytes, sig: Mapping[str, Any], version: int) -> bytes | None:
    """The signed bytes cut out of the line itself, or None when the line is not in the written shape."""
    if version >= 2:
        member = b',"value":"' + str(sig["value"]).encode("ascii") + b'"}'
        at = line.find(member)
        if at < 0 or line.find(member, at + 1) >= 0:  # exactly once
            return None
        return line[:at] + b"}" + line[at + len(member):]
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
    if type(sig) is not dict and not isinstance(sig, Mapping):  # a decoded line's is a dict: no ABC check
        raise SignatureProblem("record has no signature")
    if type(sig.get("v")) is int and sig["v"] == CERTIFIED_VERSION:
        return _verify_certified(record, sig, by_id, line)
    key_id = sig.get("key_id")
    verifier = by_id.get(key_id) if isinstance(key_id, str) else None
    if verifier is None:
        raise SignatureProblem(f"signed by key {key_id}, which is not among the given public keys", unknown_key=True)
    version = _check_header(sig, verifier)
    raw = strict_b64decode(sig.get("value"))
    _check_value(raw, verifier, version)
    payload = _payload_from_line(line, sig, version) if line is not None else None
    from_line = payload is not None and version == 2
    _verify_payload(verifier, raw, record, payload)
    return verifier, from_line


def _verify_payload(verifier: Verifier, raw: bytes, record: Mapping[str, Any], payload: bytes | None) -> None:
    if payload is None:
        payload = signing_payload(record)
    try:
        verifier.verify(raw, payload)
    except VerificationError:
        raise SignatureProblem("signature does not match the record (the record was edited)") from None


# --- version 3: a batch key and its certificate -------------------------------------------
_certified: dict[tuple[tuple[str, Any], ...], Verifier] = {}  # certificate -> its batch key, once checked
_MAX_REMEMBERED = 4096


def _verify_certified(record: Mapping[str, Any], sig: Mapping[str, Any], by_id: Mapping[str, Verifier],
                      line: bytes | None) -> tuple[Verifier, bool]:
    extra, missing = sorted(set(sig) - V3_FIELDS), sorted(V3_FIELDS - set(sig))
    if extra:
        raise SignatureProblem(f"unknown member(s) {', '.join(extra)} in signature")
    if missing:
        raise SignatureProblem(f"version-3 signature lacks {', '.join(missing)}")
    cert = sig["cert"]
    if not isinstance(cert, Mapping):
        raise SignatureProblem("signature.cert is not an object")
    certifier, batch_key = check_certificate(cert, by_id)
    if sig["alg"] != ED25519:
        raise SignatureProblem(f"signature.alg is {sig['alg']!r}; a version-3 record is signed by its batch's "
                               "Ed25519 key")
    if sig["key_id"] != batch_key.key_id:
        raise SignatureProblem(f"signed by key {sig['key_id']}, which its certificate does not certify "
                               f"(the certificate is for {batch_key.key_id})")
    _check_binding(record, cert)
    raw = strict_b64decode(sig["value"])
    _check_value(raw, batch_key, CERTIFIED_VERSION)
    payload = _payload_from_line(line, sig, CERTIFIED_VERSION) if line is not None else None
    _verify_payload(batch_key, raw, record, payload)
    return certifier, payload is not None


def check_certificate(cert: Mapping[str, Any], by_id: Mapping[str, Verifier]) -> tuple[Verifier, Verifier]:
    """(the given key that signed the certificate, the batch key it certifies); raise SignatureProblem.
    A certificate's signature is checked once; the result is remembered by the certificate's content."""
    _check_certificate_members(cert)
    certifier = by_id.get(cert["key_id"])
    if certifier is None:
        raise SignatureProblem(f"certificate is signed by key {cert['key_id']}, which is not among the given "
                               "public keys", unknown_key=True)
    memo = tuple(sorted(cert.items()))
    batch_key = _certified.get(memo)
    if batch_key is not None:
        return certifier, batch_key
    if cert["alg"] != certifier.algorithm:
        raise SignatureProblem(f"certificate alg is {cert['alg']!r}, but key {certifier.key_id} "
                               f"is an {certifier.algorithm} key")
    pub = strict_b64decode(cert["pub"], "certificate pub")
    if len(pub) != 32:
        raise SignatureProblem(f"certificate pub is {len(pub)} bytes, not an Ed25519 public key (32)")
    raw = strict_b64decode(cert["value"], "certificate value")
    _check_value(raw, certifier, CERTIFIED_VERSION, "certificate value")
    try:
        certifier.verify(raw, certificate_payload(dict(cert)))
    except VerificationError:
        raise SignatureProblem(f"certificate signature does not match (the certificate was edited, or key "
                               f"{certifier.key_id} did not make it)") from None
    key = ed25519.Ed25519PublicKey.from_public_bytes(pub)
    batch_key = Verifier(key, key_id_for(key), f"batch key certified by {certifier.key_id}")
    if len(_certified) >= _MAX_REMEMBERED:
        _certified.clear()
    _certified[memo] = batch_key
    return certifier, batch_key


def _check_certificate_members(cert: Mapping[str, Any]) -> None:
    extra, missing = sorted(set(cert) - CERT_FIELDS), sorted(CERT_FIELDS - {"kms_key"} - set(cert))
    if extra:
        raise SignatureProblem(f"unknown member(s) {', '.join(extra)} in signature.cert")
    if missing:
        raise SignatureProblem(f"signature.cert lacks {', '.join(missing)}")
    if type(cert["v"]) is not int or cert["v"] != CERTIFIED_VERSION or cert["purpose"] != CERT_PURPOSE:
        raise SignatureProblem(f"signature.cert is not a version-{CERTIFIED_VERSION} batch-key certificate "
                               f"(v {cert['v']!r}, purpose {cert['purpose']!r})")
    for name in ("alg", "key_id", "kms_key", "pub", "value"):
        if name in cert and not isinstance(cert[name], str):
            raise SignatureProblem(f"signature.cert.{name} is not a string")
    first, last, prev = cert["first_seq"], cert["last_seq"], cert["prev"]
    if type(first) is not int or type(last) is not int or not 1 <= first <= last:
        raise SignatureProblem(f"signature.cert binds seq {first!r}..{last!r}, not a range of positions")
    if prev is not None and not isinstance(prev, str):
        raise SignatureProblem("signature.cert.prev is not a string or null")


def _check_binding(record: Mapping[str, Any], cert: Mapping[str, Any]) -> None:
    """The record lies where its certificate lets the batch key sign: seq first..last, the first
    one chained after the line the certificate names."""
    chain = record.get("chain")
    seq, prev = (chain.get("seq"), chain.get("prev")) if isinstance(chain, Mapping) else (None, None)
    first, last = cert["first_seq"], cert["last_seq"]
    if type(seq) is not int or not first <= seq <= last:
        raise SignatureProblem(f"chain.seq {seq!r} is outside the seqs {first}..{last} its certificate binds "
                               "the batch key to")
    if seq == first and prev != cert["prev"]:
        raise SignatureProblem(f"chain.prev differs from the one its certificate binds seq {first} to "
                               "(a batch's records moved onto another chain)")
