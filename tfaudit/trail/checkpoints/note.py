"""The checkpoint format: a C2SP tlog-checkpoint (origin, tree size, root) in a C2SP signed note."""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

from tfaudit.errors import ConfigError, DeliveryError, VerificationError
from tfaudit.trail import merkle
from tfaudit.trail.signing import Signer, Verifier

DEFAULT_ORIGIN_PREFIX = "tfaudit.dev/ledger/"
SIG_PREFIX = "\u2014 "  # em dash, space: the C2SP signed-note signature line
ED25519_SIG_TYPE = b"\x01"
CHECKPOINT_SUFFIX = ".checkpoint"
PROOF_SUFFIX = ".consistency.json"
NAME_RE = re.compile(r"^(\d{12})-([0-9a-f]{16})\.checkpoint$")
MAX_NOTE_BYTES = 1 << 20


# --- the signed note (c2sp.org/signed-note) ------------------------------------------------------
def _ed25519_raw(key: ed25519.Ed25519PublicKey) -> bytes:
    return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def note_key_id(name: str, public_key: ed25519.Ed25519PublicKey) -> bytes:
    """SHA-256(key name || 0x0A || 0x01 || 32-byte Ed25519 public key)[:4], as the spec recommends."""
    return hashlib.sha256(name.encode() + b"\n" + ED25519_SIG_TYPE + _ed25519_raw(public_key)).digest()[:4]


def check_name(name: str) -> None:
    if not name or any(c.isspace() or c == "+" or ord(c) < 0x20 for c in name):
        raise ConfigError(f"checkpoint origin {name!r} must be non-empty, without spaces or '+'",
                          hint='set checkpoints { origin = "example.com/infra-prod" }')


def signer_public_key(signer: Signer) -> ed25519.Ed25519PublicKey:
    key = getattr(signer, "private_key", None)
    if not isinstance(key, ed25519.Ed25519PrivateKey):
        raise DeliveryError(f"checkpoints are signed with an Ed25519 key; the configured signer is {signer.algorithm}",
                            hint="use an Ed25519 signing key (tfaudit keygen) to write checkpoints")
    return key.public_key()


def sign_note(text: str, name: str, signer: Signer) -> str:
    check_name(name)
    if not text.endswith("\n") or "\n\n" in text:
        raise ValueError("note text must end in a newline and have no blank line")
    kid = note_key_id(name, signer_public_key(signer))
    sig = signer.sign(text.encode())
    return f"{text}\n{SIG_PREFIX}{name} {base64.b64encode(kid + sig).decode()}\n"


def open_note(data: bytes, verifiers: Sequence[Verifier], *, what: str = "note") -> tuple[str, list[str]]:
    """The note text and the names of the given keys that signed it; raises unless one did.

    Signatures from unknown keys are ignored; a signature from a known key that fails rejects
    the whole note (c2sp.org/signed-note).
    """
    if len(data) > MAX_NOTE_BYTES:
        raise VerificationError(f"{what} is larger than {MAX_NOTE_BYTES} bytes")
    try:
        note = data.decode("utf-8")
    except UnicodeDecodeError:
        raise VerificationError(f"{what} is not UTF-8") from None
    if any(ord(c) < 0x20 and c != "\n" for c in note):
        raise VerificationError(f"{what} contains control characters")
    split = note.rfind("\n\n")
    if split < 0 or not note.endswith("\n"):
        raise VerificationError(f"{what} is not a signed note (no blank line before signatures)")
    text, sig_block = note[: split + 1], note[split + 2 :]
    keys = [(v, v.public_key) for v in verifiers if isinstance(v.public_key, ed25519.Ed25519PublicKey)]
    signed_by: list[str] = []
    lines = sig_block[:-1].split("\n")
    if not lines or lines == [""]:
        raise VerificationError(f"{what} has no signature lines")
    for line in lines:
        if not line.startswith(SIG_PREFIX):
            raise VerificationError(f"{what}: malformed signature line {line[:40]!r}")
        name, _, b64 = line[len(SIG_PREFIX):].partition(" ")
        try:
            raw = base64.b64decode(b64, validate=True)
        except (binascii.Error, ValueError):
            raise VerificationError(f"{what}: signature of {name!r} is not base64") from None
        if not name or " " in b64 or len(raw) < 5:
            raise VerificationError(f"{what}: malformed signature line for {name!r}")
        for verifier, pub in keys:
            if note_key_id(name, pub) != raw[:4]:
                continue
            try:
                verifier.verify(raw[4:], text.encode())
            except VerificationError:
                raise VerificationError(f"{what}: the signature by {name} ({verifier.key_id}) does not match: "
                                        "the note was altered") from None
            signed_by.append(name)
    if not signed_by:
        raise VerificationError(f"{what} is not signed by any of the given public keys",
                                hint="pass the .pub file of the key that signs the ledger")
    return text, signed_by


# --- the checkpoint (c2sp.org/tlog-checkpoint) ---------------------------------------------------
@dataclass(frozen=True)
class Checkpoint:
    origin: str
    size: int
    root: bytes

    @property
    def root_b64(self) -> str:
        return base64.b64encode(self.root).decode()

    @property
    def name(self) -> str:
        """File/object name: sorts by tree size; the root prefix keeps a fork from overwriting."""
        return f"{self.size:012d}-{self.root.hex()[:16]}{CHECKPOINT_SUFFIX}"

    def text(self) -> str:
        return f"{self.origin}\n{self.size}\n{self.root_b64}\n"

    @classmethod
    def parse(cls, text: str, *, what: str = "checkpoint") -> Checkpoint:
        lines = text.split("\n")
        if len(lines) < 4 or lines[-1] != "" or any(not ln for ln in lines[:-1]):
            raise VerificationError(f"{what}: the note text is not origin, tree size and root hash lines")
        origin, size_s, root_s = lines[0], lines[1], lines[2]
        if not re.fullmatch(r"0|[1-9][0-9]{0,18}", size_s):
            raise VerificationError(f"{what}: tree size {size_s[:30]!r} is not a decimal number")
        try:
            root = base64.b64decode(root_s, validate=True)
        except (binascii.Error, ValueError):
            root = b""
        if len(root) != merkle.HASH_SIZE:
            raise VerificationError(f"{what}: the root hash is not a base64 SHA-256 hash")
        return cls(origin, int(size_s), root)

    def sign(self, signer: Signer) -> str:
        return sign_note(self.text(), self.origin, signer)


def open_checkpoint(data: bytes, verifiers: Sequence[Verifier], *, what: str = "checkpoint") -> Checkpoint:
    text, _ = open_note(data, verifiers, what=what)
    return Checkpoint.parse(text, what=what)


def default_origin(first_line: bytes) -> str:
    """Names the log by its first record, so it stays the same across machines and paths."""
    return DEFAULT_ORIGIN_PREFIX + hashlib.sha256(first_line).hexdigest()[:16]

