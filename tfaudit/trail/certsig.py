"""Signature version 3: one append batch signed by a key made for it, certified by one signature.

A signer whose every signature is a network call (AWS KMS) sets `certifies_batches`. For each
append batch (the records chained and written under one lock) tfaudit then makes an Ed25519
key in memory, has the configured signer sign ONE certificate for it, signs each record with
that key and forgets it: a run costs one KMS call per append (two for `apply`: `run.started`
before terraform, the rest after), however many resources it changes.

The certificate (`signature.cert`, in every record of the batch, so each record verifies alone):

    {"alg": the certifying key's algorithm, "key_id": its id, ["kms_key": its ARN,]
     "purpose": "tfaudit.ledger-batch-key", "pub": the batch key (base64, 32 raw bytes),
     "first_seq": N, "last_seq": M, "prev": chain.prev of record N, "v": 3,
     "value": the certifying key's signature over the RFC 8785 form of all of the above}

It binds the batch key to the ledger positions N..M after the line whose digest is `prev`:
someone holding a leaked batch key can sign records only at those positions of that chain,
which is no more than the batch's writer did; anywhere else the signature is refused. The
batch key's private half lives in this process's memory for one batch and is never written,
logged or returned.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass, field
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

from tfaudit.errors import SigningKeyError
from tfaudit.trail.signing import (
    CERT_PURPOSE,
    CERTIFIED_VERSION,
    ECDSA_P256_SHA256,
    ED25519,
    Signer,
    canonical,
    key_id_for,
    low_s,
)


def certificate_payload(cert: dict[str, Any]) -> bytes:
    """The bytes a certificate's signature covers: its RFC 8785 form without `value`."""
    return canonical({k: v for k, v in cert.items() if k != "value"})


def _certificate_head(certifier: Signer, pub: bytes, first_seq: int, last_seq: int, prev: str | None) -> dict[str, Any]:
    head: dict[str, Any] = {"alg": certifier.algorithm, "first_seq": first_seq, "key_id": certifier.key_id,
                            "last_seq": last_seq, "prev": prev, "pub": base64.b64encode(pub).decode("ascii"),
                            "purpose": CERT_PURPOSE, "v": CERTIFIED_VERSION}
    kms_key = getattr(certifier, "kms_key", None)
    if kms_key:
        head["kms_key"] = kms_key
    return head


@dataclass(frozen=True)
class CertifiedSigner:
    """A Signer for one append batch: its own Ed25519 key, and the certificate that vouches for it."""

    certificate: dict[str, Any]
    key_id: str
    _key: ed25519.Ed25519PrivateKey = field(repr=False)
    algorithm: str = ED25519

    def sign(self, payload: bytes) -> bytes:
        return self._key.sign(payload)


def issue(certifier: Signer, first_seq: int, last_seq: int, prev: str | None) -> CertifiedSigner:
    """Make a batch key and have `certifier` sign its certificate (one call to it)."""
    key = ed25519.Ed25519PrivateKey.generate()
    pub = key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    for _ in range(2):  # a KMS signer that finds its cached key stale refreshes it while signing
        head = _certificate_head(certifier, pub, first_seq, last_seq, prev)
        sig = certifier.sign(certificate_payload(head))
        if _certificate_head(certifier, pub, first_seq, last_seq, prev) == head:
            break
    else:
        raise SigningKeyError("the signing key changed twice while certifying one batch", hint="run again")
    if certifier.algorithm == ECDSA_P256_SHA256:
        sig = low_s(sig)
    cert = {**head, "value": base64.b64encode(sig).decode("ascii")}
    return CertifiedSigner(cert, key_id_for(key.public_key()), key)


def for_batch(signer: Signer, first_seq: int, last_seq: int, prev: str | None) -> Signer:
    """The signer for the records first_seq..last_seq chained after `prev`: a certified batch key
    when `signer` asks for one (`certifies_batches`), else `signer` itself (version 2)."""
    if not getattr(signer, "certifies_batches", False):
        return signer
    return issue(signer, first_seq, last_seq, prev)
