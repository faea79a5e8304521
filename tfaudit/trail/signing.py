"""Canonical bytes, signers behind one Protocol, and offline verification.

A record is canonicalized with RFC 8785 (JSON Canonicalization Scheme), without its
`signature` member, and those bytes are signed. The ledger line is the RFC 8785 form of
the whole record, so the bytes hashed into the chain are reproducible by anyone.
"""

from __future__ import annotations

import base64
import hashlib
import os
import stat
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import rfc8785
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519

from tfaudit.errors import InputError, SigningKeyError, VerificationError

ED25519 = "ed25519"
ECDSA_P256_SHA256 = "ecdsa-p256-sha256"


def canonical(obj: Any) -> bytes:
    """RFC 8785 canonical JSON bytes."""
    return rfc8785.dumps(obj)


def signing_payload(record: Mapping[str, Any]) -> bytes:
    """The bytes a record's signature covers: everything but the signature itself."""
    return canonical({k: v for k, v in record.items() if k != "signature"})


def line_digest(line: bytes) -> str:
    """Digest of one ledger line (without its newline), as stored in the next line's chain.prev."""
    return "sha256:" + hashlib.sha256(line.rstrip(b"\n")).hexdigest()


def key_id_for(public_key: ed25519.Ed25519PublicKey | ec.EllipticCurvePublicKey) -> str:
    """Key id: the SHA-256 of the DER SubjectPublicKeyInfo, so any holder of the public key can compute it."""
    der = public_key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return "sha256:" + hashlib.sha256(der).hexdigest()


class Signer(Protocol):
    @property
    def algorithm(self) -> str: ...

    @property
    def key_id(self) -> str: ...

    def sign(self, payload: bytes) -> bytes: ...


@dataclass(frozen=True)
class Ed25519Signer:
    private_key: ed25519.Ed25519PrivateKey
    key_id: str
    algorithm: str = ED25519

    @classmethod
    def from_private_key(cls, key: ed25519.Ed25519PrivateKey) -> Ed25519Signer:
        return cls(key, key_id_for(key.public_key()))

    def sign(self, payload: bytes) -> bytes:
        return self.private_key.sign(payload)


def sign_record(record: Mapping[str, Any], signer: Signer) -> dict[str, Any]:
    sig = signer.sign(signing_payload(record))
    out = dict(record)
    out["signature"] = {
        "alg": signer.algorithm,
        "key_id": signer.key_id,
        "value": base64.b64encode(sig).decode("ascii"),
    }
    kms_key = getattr(signer, "kms_key", None)
    if kms_key:  # which AWS KMS key made it (metadata; the signature covers the rest of the record)
        out["signature"]["kms_key"] = kms_key
    return out


# --- keys on disk --------------------------------------------------------------------
def generate_keypair(path: Path, *, overwrite: bool = False) -> tuple[Path, Path]:
    """Write an Ed25519 private key at path (0600) and its public key at path.pub."""
    pub_path = path.with_name(path.name + ".pub")
    if not overwrite and (path.exists() or pub_path.exists()):
        raise InputError(f"{path}: a key already exists there", hint="choose another path or pass --force")
    key = ed25519.Ed25519PrivateKey.generate()
    priv = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    pub = key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        if overwrite and path.exists():
            path.unlink()
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(priv)
        pub_path.write_bytes(pub)
    except OSError as e:
        raise SigningKeyError(f"{path}: cannot write key ({e.strerror})", hint="check the directory exists and is writable") from e
    return path, pub_path


def load_signer(path: Path) -> Ed25519Signer:
    """Load an Ed25519 private key, refusing one that others can read."""
    try:
        st = path.stat()
    except FileNotFoundError:
        raise SigningKeyError(
            f"signing key {path} does not exist", hint=f"create one with 'tfaudit keygen {path}' or set --signing-key"
        ) from None
    except OSError as e:
        raise SigningKeyError(f"signing key {path}: {e.strerror}") from e
    if os.name == "posix" and st.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise SigningKeyError(
            f"signing key {path} is accessible by other users (mode {stat.S_IMODE(st.st_mode):04o})",
            hint=f"run 'chmod 600 {path}'",
        )
    try:
        data = path.read_bytes()
    except OSError as e:
        raise SigningKeyError(f"signing key {path}: cannot read ({e.strerror})", hint="check its permissions") from e
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError) as e:
        raise SigningKeyError(
            f"signing key {path} is not an unencrypted PEM private key", hint="create one with 'tfaudit keygen PATH'"
        ) from e
    if not isinstance(key, ed25519.Ed25519PrivateKey):
        raise SigningKeyError(f"signing key {path} is not an Ed25519 key", hint="create one with 'tfaudit keygen PATH'")
    return Ed25519Signer.from_private_key(key)


# --- verification ------------------------------------------------------------------------
@dataclass(frozen=True)
class Verifier:
    """Checks signatures made by one public key (Ed25519, or ECDSA P-256 as AWS KMS makes)."""

    public_key: ed25519.Ed25519PublicKey | ec.EllipticCurvePublicKey
    key_id: str
    source: str

    @property
    def algorithm(self) -> str:
        return ED25519 if isinstance(self.public_key, ed25519.Ed25519PublicKey) else ECDSA_P256_SHA256

    def verify(self, signature: bytes, payload: bytes) -> None:
        """Raise VerificationError unless signature is valid for payload."""
        try:
            if isinstance(self.public_key, ed25519.Ed25519PublicKey):
                self.public_key.verify(signature, payload)
            else:
                self.public_key.verify(signature, payload, ec.ECDSA(hashes.SHA256()))
        except InvalidSignature:
            raise VerificationError("signature does not match") from None


def verifier_from_pem(data: bytes, source: str) -> Verifier:
    try:
        key = serialization.load_pem_public_key(data)
    except ValueError:
        try:
            key = serialization.load_der_public_key(data)
        except ValueError as e:
            raise InputError(f"{source}: not a PEM or DER public key", hint="pass the .pub file written by 'tfaudit keygen'") from e
    if isinstance(key, ec.EllipticCurvePublicKey) and not isinstance(key.curve, ec.SECP256R1):
        raise InputError(f"{source}: ECDSA keys must use the P-256 curve")
    if not isinstance(key, (ed25519.Ed25519PublicKey, ec.EllipticCurvePublicKey)):
        raise InputError(f"{source}: unsupported public key type", hint="use Ed25519 or ECDSA P-256")
    return Verifier(key, key_id_for(key), source)


def load_verifier(path: Path) -> Verifier:
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise InputError(f"public key {path} does not exist", hint="pass the .pub file written by 'tfaudit keygen'") from None
    except OSError as e:
        raise InputError(f"public key {path}: {e.strerror}") from e
    return verifier_from_pem(data, str(path))


def default_key_path(env: Mapping[str, str]) -> Path:
    """The per-user key created on first use when none is configured."""
    base = env.get("XDG_CONFIG_HOME") or os.path.join(env.get("HOME") or os.path.expanduser("~"), ".config")
    return Path(base) / "tfaudit" / "signing-key"
