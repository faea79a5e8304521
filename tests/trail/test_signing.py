"""Verifier.verify: libsodium first (called directly), OpenSSL's verdict wherever libsodium refuses."""

from __future__ import annotations

from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import ed25519

from tfaudit.errors import VerificationError
from tfaudit.trail.signing import Verifier, generate_keypair, key_id_for, load_signer, load_verifier


def test_payloads_of_any_size_verify_and_an_edit_is_refused(tmp_path: Path) -> None:
    priv, pub = generate_keypair(tmp_path / "key")
    signer, verifier = load_signer(priv), load_verifier(pub)
    for size in (0, 1_000, 64 * 1024 - 64, 64 * 1024, 300_000):  # around and past libsodium's scratch buffer
        payload = bytes(range(256)) * (size // 256) + b"x" * (size % 256)
        signature = signer.sign(payload)
        verifier.verify(signature, payload)
        with pytest.raises(VerificationError):
            verifier.verify(signature, payload + b" ")
        with pytest.raises(VerificationError):
            verifier.verify(signature[:-1] + bytes([signature[-1] ^ 1]), payload)
    with pytest.raises(VerificationError):
        verifier.verify(signature[:63], payload)  # not 64 bytes: OpenSSL says no too


def test_a_signature_libsodium_refuses_gets_openssl_verdict() -> None:
    """libsodium refuses small-order points that OpenSSL accepts: verify answers as OpenSSL does."""
    identity = bytes([1]) + bytes(31)  # the neutral point as a public key: every (R = identity, S = 0) verifies
    key = ed25519.Ed25519PublicKey.from_public_bytes(identity)
    verifier = Verifier(key, key_id_for(key), "small-order key")
    verifier.verify(identity + bytes(32), b"any payload")
    with pytest.raises(VerificationError):
        verifier.verify(identity + bytes([1]) + bytes(31), b"any payload")
