"""Canonical bytes, signers behind one Protocol, and offline verification.

The ledger line is the RFC 8785 (JSON Canonicalization Scheme) form of the whole record,
so the bytes hashed into the chain are reproducible by anyone.

Signature version 2 (`"signature": {"alg", "key_id", ["kms_key",] "v": 2, "value"}`) signs
the RFC 8785 form of the record with its signature object minus `value`: every byte of the
line but the signature value itself is signed, the algorithm and the key identity included.
The value is base64 with canonical padding, and an ECDSA value is DER with a low S, so it
has exactly one spelling too: no byte of a line can change and still verify.

Version 1 (no `v`; written before) signed the record without its signature object, which
left `alg`, an added `kms_key` and the padding bits unsigned. A version-1 signature is still
accepted, but only where that leaves no freedom: an Ed25519 key (no ECDSA malleability),
exactly the members `alg`, `key_id`, `value`, `alg` equal to "ed25519", canonical base64.
Version-1 KMS records (which carried an unsigned `kms_key`) are refused: re-sign or keep
the old verifier's report.

Version 3 (`"v": 3`, written by the KMS signer) signs like version 2, but with an Ed25519 key
made in memory for one append batch; `signature.cert` is that key's certificate, signed by
the KMS key (tfaudit.trail.certsig): one KMS call per batch instead of one per record.
"""

from __future__ import annotations

import base64
import hashlib
import os
import stat
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any, Protocol

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature, encode_dss_signature

from tfaudit._bounded import MAX_KEY_BYTES, read_regular
from tfaudit.errors import InputError, SigningKeyError, VerificationError
from tfaudit.trail import canonjson

ED25519 = "ed25519"
ECDSA_P256_SHA256 = "ecdsa-p256-sha256"
SIGNATURE_VERSION = 2
CERTIFIED_VERSION = 3
V2_FIELDS = frozenset({"alg", "key_id", "kms_key", "v", "value"})
V3_FIELDS = frozenset({"alg", "cert", "key_id", "v", "value"})
# a version-3 certificate: every member required but kms_key, all signed (but value) by the certifying key
CERT_FIELDS = frozenset({"alg", "first_seq", "key_id", "kms_key", "last_seq", "prev", "pub", "purpose", "v", "value"})
CERT_PURPOSE = "tfaudit.ledger-batch-key"
V1_FIELDS = frozenset({"alg", "key_id", "value"})
P256_ORDER = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551


def canonical(obj: Any) -> bytes:
    """RFC 8785 canonical JSON bytes (tfaudit.trail.canonjson: rfc8785's output, in C when it can be)."""
    return canonjson.dumps(obj)


def signing_payload(record: Mapping[str, Any]) -> bytes:
    """The bytes a record's signature covers, by its version: v2 everything but the signature's
    value; v1 (legacy) everything but the signature object."""
    sig = record.get("signature")
    if isinstance(sig, Mapping) and "v" in sig:
        return canonical({**record, "signature": {k: v for k, v in sig.items() if k != "value"}})
    return canonical({k: v for k, v in record.items() if k != "signature"})


def signer_key_id(sig: Mapping[str, Any]) -> Any:
    """The key a signature object answers to: its certificate's signer for version 3 (the batch key
    is made for one batch), else its key_id."""
    cert = sig.get("cert")
    if sig.get("v") == CERTIFIED_VERSION and isinstance(cert, Mapping):
        return cert.get("key_id")
    return sig.get("key_id")


def low_s(signature: bytes) -> bytes:
    """The DER ECDSA P-256 signature with S in the lower half: the one spelling v2 accepts."""
    r, s = decode_dss_signature(signature)
    return encode_dss_signature(r, s if s <= P256_ORDER // 2 else P256_ORDER - s)


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


def signature_header(signer: Signer) -> dict[str, Any]:
    """The signature object without its value: signed with the record (version 2, or 3 with a certificate)."""
    cert = getattr(signer, "certificate", None)
    if cert is not None:  # an append batch's key, certified by the configured signer (tfaudit.trail.certsig)
        return {"alg": signer.algorithm, "cert": cert, "key_id": signer.key_id, "v": CERTIFIED_VERSION}
    head: dict[str, Any] = {"alg": signer.algorithm, "key_id": signer.key_id, "v": SIGNATURE_VERSION}
    kms_key = getattr(signer, "kms_key", None)
    if kms_key:  # which AWS KMS key made it
        head["kms_key"] = kms_key
    return head


def sign_record(record: Mapping[str, Any], signer: Signer) -> dict[str, Any]:
    return seal_line(record, signer)[0]


def seal_line(record: Mapping[str, Any], signer: Signer) -> tuple[dict[str, Any], bytes]:
    """The signed record and its ledger line (RFC 8785), from one canonicalization of the record:
    the signature object's bytes are spliced in where a placeholder sorts (the same place), first
    without the value (the payload), then with it (the line; `value` is the object's last member)."""
    body = {k: v for k, v in record.items() if k != "signature"}
    skeleton = canonical({**body, "signature": 0})
    spliceable = skeleton.count(_PLACEHOLDER) == 1  # else the same bytes occur elsewhere in the record
    for _ in range(2):  # a KMS signer that finds its cached key stale refreshes it while signing
        head = signature_header(signer)
        head_bytes = _canonical_head(head)
        payload = (skeleton.replace(_PLACEHOLDER, b'"signature":' + head_bytes) if spliceable
                   else canonical({**body, "signature": head}))
        sig = signer.sign(payload)
        if signature_header(signer) == head:
            break
    else:
        raise SigningKeyError("the signing key changed twice while signing one record", hint="run again")
    if signer.algorithm == ECDSA_P256_SHA256:
        sig = low_s(sig)
    value = base64.b64encode(sig).decode("ascii")
    sealed = {**body, "signature": {**head, "value": value}}
    if not spliceable:
        return sealed, canonical(sealed)
    signed = b'"signature":' + head_bytes[:-1] + b',"value":"' + value.encode("ascii") + b'"}'
    return sealed, skeleton.replace(_PLACEHOLDER, signed)


_PLACEHOLDER = b'"signature":0'
_last_head: tuple[dict[str, Any] | None, bytes] = (None, b"")


def _canonical_head(head: dict[str, Any]) -> bytes:
    """canonical(head), remembered for the last head: a batch's records share theirs (and its certificate)."""
    global _last_head
    known, data = _last_head
    if known != head:
        data = canonical(head)
        _last_head = (head, data)
    return data


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
    if not stat.S_ISREG(st.st_mode):  # a FIFO would block the run until someone writes to it
        raise SigningKeyError(f"signing key {path} is not a regular file", hint="point --signing-key at the key file itself")
    if os.name == "posix" and st.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise SigningKeyError(
            f"signing key {path} is accessible by other users (mode {stat.S_IMODE(st.st_mode):04o})",
            hint=f"run 'chmod 600 {path}'",
        )
    data = read_regular(path, limit=MAX_KEY_BYTES, what="signing key", error=SigningKeyError,
                        hint="point --signing-key at a key made by 'tfaudit keygen PATH'")
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

    @cached_property
    def algorithm(self) -> str:  # asked several times for every record verify checks
        return ED25519 if isinstance(self.public_key, ed25519.Ed25519PublicKey) else ECDSA_P256_SHA256

    def verify(self, signature: bytes, payload: bytes) -> None:
        """Raise VerificationError unless signature is valid for payload.

        Ed25519 is checked first with libsodium (PyNaCl), about 1.6x faster than OpenSSL here;
        a signature libsodium refuses is asked of OpenSSL too, so the verdict is always OpenSSL's
        (libsodium accepts a subset of what OpenSSL does: it also refuses small-order points).
        """
        pk = self._sodium_pk
        if pk is not None and type(signature) is bytes and type(payload) is bytes and len(signature) == 64:
            if _sodium_open(signature + payload, pk):
                return
        elif (fast := self._sodium_key) is not None:
            key, refused = fast
            try:
                key.verify(payload, signature)
                return
            except (refused, ValueError):  # ValueError: not 64 bytes
                pass  # OpenSSL's verdict, below
        try:
            if isinstance(self.public_key, ed25519.Ed25519PublicKey):
                self.public_key.verify(signature, payload)
            else:
                self.public_key.verify(signature, payload, ec.ECDSA(hashes.SHA256()))
        except InvalidSignature:
            raise VerificationError("signature does not match") from None

    def prepare(self) -> None:
        """Load libsodium's copy of the key now (before forking workers that then share it)."""
        _ = self._sodium_key, self._sodium_pk, self.algorithm

    @cached_property
    def _sodium_key(self) -> tuple[Any, type[Exception]] | None:
        """The same Ed25519 public key for libsodium and the error it raises for a bad signature
        (None for ECDSA, or for a key libsodium refuses)."""
        if not isinstance(self.public_key, ed25519.Ed25519PublicKey):
            return None
        from nacl.exceptions import BadSignatureError, CryptoError
        from nacl.signing import VerifyKey

        try:
            raw = self.public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
            return VerifyKey(raw), BadSignatureError
        except (CryptoError, ValueError, TypeError):
            return None

    @cached_property
    def _sodium_pk(self) -> bytes | None:
        """The key's 32 bytes as libsodium takes them (None where `_sodium_key` is None)."""
        fast = self._sodium_key
        return bytes(fast[0]) if fast is not None else None


# libsodium's crypto_sign_open called directly (VerifyKey.verify calls it through two Python layers that
# allocate an output buffer and copy the message out of it on every call): the message is written to
# one scratch buffer that is never read (threads writing it at once do no harm); a longer message gets
# a buffer of its own.
_SCRATCH_BYTES = 1 << 16
_sodium: Any = None  # (crypto_sign_open, ffi, scratch buffer, scratch length), made on first use


def _sodium_open(signed: bytes, pk: bytes) -> bool:
    """Whether libsodium accepts `signed` (the 64-byte signature, then the message) under key `pk`."""
    global _sodium
    if _sodium is None:
        import importlib

        binding = importlib.import_module("nacl._sodium")  # PyNaCl's cffi module (no type stubs)
        ffi = binding.ffi
        _sodium = binding.lib.crypto_sign_open, ffi, ffi.new("unsigned char[]", _SCRATCH_BYTES), ffi.new("unsigned long long *")
    sign_open, ffi, out, out_len = _sodium
    if len(signed) > _SCRATCH_BYTES:
        out = ffi.new("unsigned char[]", len(signed))
    return bool(sign_open(out, out_len, signed, len(signed), pk) == 0)


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
    data = read_regular(path, limit=MAX_KEY_BYTES, what="public key", error=InputError,
                        hint="pass the .pub file written by 'tfaudit keygen'")
    return verifier_from_pem(data, str(path))


def default_key_path(env: Mapping[str, str]) -> Path:
    """The per-user key created on first use when none is configured."""
    base = env.get("XDG_CONFIG_HOME") or os.path.join(env.get("HOME") or os.path.expanduser("~"), ".config")
    return Path(base) / "tfaudit" / "signing-key"
