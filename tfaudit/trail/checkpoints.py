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
"""

from __future__ import annotations

import base64
import binascii
import fcntl
import hashlib
import json
import os
import re
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from enum import Enum
from pathlib import Path
from typing import Any, ClassVar, Protocol

from tfaudit.logs import get_logger
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

from tfaudit.trail import merkle
from tfaudit.config import BlockContext, Config, check_keys, get_int, get_str, labelled_blocks, single_block
from tfaudit.errors import (ConfigError, DeliveryError, ExitCode, InputError, LedgerError, TfauditError, UsageError,
                            VerificationError)
from tfaudit.trail.signing import Signer, Verifier

log = get_logger("tfaudit")

DEFAULT_ORIGIN_PREFIX = "tfaudit.dev/ledger/"
SIG_PREFIX = "\u2014 "  # em dash, space: the C2SP signed-note signature line
ED25519_SIG_TYPE = b"\x01"
CHECKPOINT_SUFFIX = ".checkpoint"
PROOF_SUFFIX = ".consistency.json"
_NAME_RE = re.compile(r"^(\d{12})-([0-9a-f]{16})\.checkpoint$")
MAX_NOTE_BYTES = 1 << 20


# --- the signed note (c2sp.org/signed-note) ------------------------------------------------------
def _ed25519_raw(key: ed25519.Ed25519PublicKey) -> bytes:
    return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def note_key_id(name: str, public_key: ed25519.Ed25519PublicKey) -> bytes:
    """SHA-256(key name || 0x0A || 0x01 || 32-byte Ed25519 public key)[:4], as the spec recommends."""
    return hashlib.sha256(name.encode() + b"\n" + ED25519_SIG_TYPE + _ed25519_raw(public_key)).digest()[:4]


def _check_name(name: str) -> None:
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
    _check_name(name)
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


# --- the ledger as a tree --------------------------------------------------------------------------
def read_lines(ledger: Path) -> list[bytes]:
    """Every line of the ledger without its newline (a torn final line included: verify reports it)."""
    try:
        data = ledger.read_bytes()
    except FileNotFoundError:
        raise LedgerError(f"ledger {ledger} does not exist", hint="check the path") from None
    except OSError as e:
        raise LedgerError(f"cannot read the ledger {ledger}: {e.strerror}") from e
    return _split_lines(data)


def _split_lines(data: bytes) -> list[bytes]:
    if not data:
        return []
    lines = data.split(b"\n")
    if lines[-1] == b"":
        lines.pop()
    return lines


@contextmanager
def _locked_ledger(ledger: Path) -> Iterator[list[bytes]]:
    """The ledger's lines, read and held under its exclusive lock (the one Ledger.append takes), so
    a concurrent run cannot append between reading and anchoring and checkpoints stay in order."""
    try:
        fd = os.open(ledger, os.O_RDONLY)
    except OSError as e:
        raise LedgerError(f"cannot read the ledger {ledger}: {e.strerror}") from e
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        chunks = []
        while chunk := os.read(fd, 1 << 20):
            chunks.append(chunk)
        yield _split_lines(b"".join(chunks))
    finally:
        os.close(fd)


# --- destinations -------------------------------------------------------------------------------
class CheckpointStore(Protocol):
    """Where checkpoints go. Readable stores also serve `tfaudit verify --checkpoints`."""

    readable: ClassVar[bool]

    def describe(self) -> str: ...

    def store(self, cp: Checkpoint, note: str, proof: Mapping[str, Any] | None) -> None:
        """Keep one signed checkpoint and the consistency proof from the previous one; raises DeliveryError."""

    def names(self) -> list[str]: ...

    def get(self, name: str) -> bytes: ...


def _as_files(cp: Checkpoint, note: str, proof: Mapping[str, Any] | None) -> list[tuple[str, bytes]]:
    """The objects a readable store keeps: the proof first, so a checkpoint never lacks its proof."""
    files = [] if proof is None else [(cp.name.replace(CHECKPOINT_SUFFIX, PROOF_SUFFIX),
                                       json.dumps(proof, indent=1).encode() + b"\n")]
    return files + [(cp.name, note.encode())]


@dataclass
class DirStore:
    """A local directory (ideally a mount the ledger's writer cannot rewrite, e.g. WORM storage)."""

    path: Path
    readable: ClassVar[bool] = True

    def describe(self) -> str:
        return str(self.path)

    def store(self, cp: Checkpoint, note: str, proof: Mapping[str, Any] | None) -> None:
        for name, data in _as_files(cp, note, proof):
            self._put(name, data)

    def _put(self, name: str, data: bytes) -> None:
        target = self.path / name
        try:
            self.path.mkdir(parents=True, exist_ok=True)
            tmp = self.path / f".{name}.{os.getpid()}.tmp"
            with open(tmp, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, target)
        except OSError as e:
            raise DeliveryError(f"cannot write checkpoint {target}: {e.strerror}",
                                hint="fix the directory's permissions or choose another with --checkpoints") from e

    def names(self) -> list[str]:
        try:
            return sorted(p.name for p in self.path.iterdir() if p.is_file())
        except FileNotFoundError:
            raise InputError(f"checkpoint directory {self.path} does not exist", hint="check the path") from None
        except OSError as e:
            raise InputError(f"cannot list checkpoint directory {self.path}: {e.strerror}") from e

    def get(self, name: str) -> bytes:
        try:
            return (self.path / name).read_bytes()
        except OSError as e:
            raise InputError(f"cannot read {self.path / name}: {e.strerror}") from e


class LockMode(str, Enum):
    COMPLIANCE = "COMPLIANCE"
    GOVERNANCE = "GOVERNANCE"


@dataclass
class S3Store:
    """An S3 prefix in a bucket with Object Lock: each checkpoint is a new object retained for N days."""

    bucket: str
    prefix: str = ""
    retain_days: int | None = 365
    mode: LockMode = LockMode.COMPLIANCE
    region: str | None = None
    endpoint_url: str | None = None
    profile: str | None = None
    env: Mapping[str, str] = field(default_factory=lambda: dict(os.environ))
    readable: ClassVar[bool] = True
    _client: Any = None

    def describe(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}"

    def _s3(self) -> Any:
        if self._client is None:
            from tfaudit import _aws  # boto3 only when an S3 destination is used

            self._client = _aws.client("s3", _aws.AwsSettings(self.region, self.profile, self.endpoint_url), self.env)
        return self._client

    def _call(self, what: str, fn: Callable[[], Any], error: type[TfauditError]) -> Any:
        from tfaudit import _aws

        try:
            return fn()
        except _aws.botocore_errors() as e:
            raise error(f"{what} {self.describe()}: {_aws.error_text(e)}",
                        hint="check the bucket exists with Object Lock enabled and the credentials may write to it") from e

    def store(self, cp: Checkpoint, note: str, proof: Mapping[str, Any] | None) -> None:
        for name, data in _as_files(cp, note, proof):
            self._put(name, data)

    def _put(self, name: str, data: bytes) -> None:
        kwargs: dict[str, Any] = {"Bucket": self.bucket, "Key": self.prefix + name, "Body": data,
                                  "ContentType": "text/plain; charset=utf-8" if name.endswith(CHECKPOINT_SUFFIX)
                                  else "application/json"}
        if self.retain_days:
            kwargs["ObjectLockMode"] = self.mode.value
            kwargs["ObjectLockRetainUntilDate"] = datetime.now(timezone.utc) + timedelta(days=self.retain_days)
            kwargs["ChecksumAlgorithm"] = "SHA256"  # S3 requires an integrity checksum with Object Lock
        self._call("cannot write checkpoint to", lambda: self._s3().put_object(**kwargs), DeliveryError)

    def names(self) -> list[str]:
        def collect() -> list[str]:
            out: list[str] = []
            for page in self._s3().get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=self.prefix):
                out += [o["Key"][len(self.prefix):] for o in page.get("Contents", ()) if "/" not in o["Key"][len(self.prefix):]]
            return sorted(out)

        return list(self._call("cannot list checkpoints in", collect, InputError))

    def get(self, name: str) -> bytes:
        def fetch() -> bytes:
            return bytes(self._s3().get_object(Bucket=self.bucket, Key=self.prefix + name)["Body"].read())

        return bytes(self._call(f"cannot read {name} from", fetch, InputError))


@dataclass
class WebhookStore:
    """POSTs each checkpoint (JSON: the note, its tree size and root, the consistency proof) to a URL."""

    url: str
    headers: Mapping[str, str] = field(default_factory=dict)
    timeout_seconds: int = 10
    readable: ClassVar[bool] = False

    def describe(self) -> str:
        from urllib.parse import urlsplit

        parts = urlsplit(self.url)  # no path or query: webhook URLs often carry a token
        return f"webhook {parts.scheme}://{parts.hostname}{':' + str(parts.port) if parts.port else ''}"

    def store(self, cp: Checkpoint, note: str, proof: Mapping[str, Any] | None) -> None:
        from tfaudit.sinks._http import HttpFailure, post

        body = json.dumps({"type": "tfaudit.checkpoint", "origin": cp.origin, "tree_size": cp.size,
                           "root_hash": cp.root_b64, "checkpoint": note, "consistency": proof}).encode()
        try:
            post(self.url, body, dict(self.headers), timeout=self.timeout_seconds, max_attempts=3,
                 deadline=time.monotonic() + 3 * self.timeout_seconds)
        except HttpFailure as e:
            raise DeliveryError(f"cannot post checkpoint to {self.describe()}: {e}") from e

    def names(self) -> list[str]:
        raise UsageError("a webhook cannot be read back", hint="verify against a directory or s3:// checkpoint location")

    def get(self, name: str) -> bytes:
        raise UsageError("a webhook cannot be read back", hint="verify against a directory or s3:// checkpoint location")


# kind -> store class. Explicit on purpose: no plugin discovery.
DESTINATIONS: dict[str, type] = {"dir": DirStore, "s3": S3Store, "webhook": WebhookStore}


def store_from_location(location: str, env: Mapping[str, str], base: Path | None = None) -> CheckpointStore:
    """`DIR`, `s3://bucket/prefix` or `https://...` (the --checkpoints / TFAUDIT_CHECKPOINTS forms)."""
    if location.startswith("s3://"):
        bucket, _, prefix = location[5:].partition("/")
        if not bucket:
            raise UsageError(f"{location!r} names no bucket", hint="use s3://BUCKET/PREFIX")
        if prefix and not prefix.endswith("/"):
            prefix += "/"
        return S3Store(bucket, prefix, env=env)
    if location.startswith(("https://", "http://")):
        from tfaudit.sinks._http import check_url

        problem = check_url(location, allow_http=False)
        if problem:
            raise UsageError(f"checkpoint webhook {problem}")
        return WebhookStore(location)
    if not location:
        raise UsageError("empty checkpoint location", hint="give a directory, s3://BUCKET/PREFIX or an https:// URL")
    path = Path(location).expanduser()
    return DirStore(path if path.is_absolute() or base is None else base / path)


# --- config: checkpoints { ... } -----------------------------------------------------------------
class OnFailure(str, Enum):
    WARN = "warn"
    FAIL = "fail"


@dataclass(frozen=True)
class DestinationSpec:
    kind: str
    settings: Mapping[str, Any]


@dataclass(frozen=True)
class CheckpointSettings:
    destinations: tuple[DestinationSpec, ...] = ()
    origin: str | None = None
    on_failure: OnFailure = OnFailure.WARN
    location: str | None = None  # --checkpoints / TFAUDIT_CHECKPOINTS, replacing the config's destinations

    def stores(self, env: Mapping[str, str]) -> list[CheckpointStore]:
        if self.location:
            return [store_from_location(self.location, env)]
        out: list[CheckpointStore] = []
        for d in self.destinations:
            s = dict(d.settings)
            if d.kind == "dir":
                out.append(DirStore(Path(s["path"])))
            elif d.kind == "s3":
                out.append(S3Store(s["bucket"], s.get("prefix", ""), s.get("retain_days", 365),
                                   LockMode(s.get("mode", "COMPLIANCE")), s.get("region"), s.get("endpoint_url"),
                                   s.get("profile"), env=env))
            else:
                out.append(WebhookStore(s["url"], s.get("headers", {}), s.get("timeout_seconds", 10)))
        return out


_DEST_KEYS = {
    "dir": {"path"},
    "s3": {"bucket", "prefix", "retain_days", "mode", "region", "endpoint_url", "profile"},
    "webhook": {"url", "headers", "timeout_seconds", "unsafe_allow_http"},
}


def parse_checkpoints(ctx: BlockContext, entries: list[Any]) -> CheckpointSettings:
    """checkpoints { origin, on_failure, destination "dir"|"s3"|"webhook" { ... } ... }"""
    body = single_block(ctx, entries)
    check_keys(ctx, body, {"origin", "on_failure", "destination"})
    origin = get_str(ctx, body, "origin")
    if origin is not None:
        _check_name(origin)
    on_failure = get_str(ctx, body, "on_failure", "warn") or "warn"
    if on_failure not in ("warn", "fail"):
        raise ctx.error(f'on_failure must be "warn" or "fail", not {on_failure!r}')
    dests: list[DestinationSpec] = []
    for (kind,), dbody in labelled_blocks(ctx, body.get("destination", []), 1):
        if kind not in _DEST_KEYS:
            raise ctx.error(f"unknown destination kind {kind!r}", hint="use dir, s3 or webhook")
        check_keys(ctx, dbody, _DEST_KEYS[kind], label=kind)
        s: dict[str, Any] = {}
        if kind == "dir":
            path = get_str(ctx, dbody, "path", label=kind)
            if not path:
                raise ctx.error("needs path", label=kind)
            s["path"] = str(ctx.resolve(path))
        elif kind == "s3":
            if not get_str(ctx, dbody, "bucket", label=kind):
                raise ctx.error("needs bucket", label=kind)
            for k in ("bucket", "prefix", "region", "endpoint_url", "profile"):
                if get_str(ctx, dbody, k, label=kind) is not None:
                    s[k] = dbody[k]
            if s.get("prefix") and not s["prefix"].endswith("/"):
                s["prefix"] += "/"
            s["retain_days"] = get_int(ctx, dbody, "retain_days", 365, label=kind, minimum=0)
            mode = get_str(ctx, dbody, "mode", "COMPLIANCE", label=kind)
            if mode not in ("COMPLIANCE", "GOVERNANCE"):
                raise ctx.error(f'mode must be "COMPLIANCE" or "GOVERNANCE", not {mode!r}', label=kind)
            s["mode"] = mode
        else:
            from tfaudit.sinks._http import check_url

            url = get_str(ctx, dbody, "url", label=kind)
            if not url:
                raise ctx.error("needs url", label=kind)
            allow_http = dbody.get("unsafe_allow_http", False) is True
            problem = check_url(url, allow_http=allow_http)
            if problem:
                raise ctx.error(f"url {problem}", label=kind)
            headers = dbody.get("headers", {})
            if not isinstance(headers, dict) or not all(isinstance(v, str) for v in headers.values()):
                raise ctx.error("headers must be a map of strings", label=kind)
            s.update(url=url, headers=dict(headers),
                     timeout_seconds=get_int(ctx, dbody, "timeout_seconds", 10, label=kind, minimum=1))
        dests.append(DestinationSpec(kind, s))
    if not dests:
        raise ctx.error('needs at least one destination, e.g. destination "dir" { path = "/mnt/worm/tfaudit" }')
    return CheckpointSettings(tuple(dests), origin, OnFailure(on_failure))


def resolve_settings(option: str | None, env: Mapping[str, str], cfg: Config) -> CheckpointSettings | None:
    """--checkpoints, else TFAUDIT_CHECKPOINTS, else the config's checkpoints block; None: not configured."""
    configured: CheckpointSettings | None = cfg.section("checkpoints")
    location = option or env.get("TFAUDIT_CHECKPOINTS")
    if location:
        base = configured or CheckpointSettings()
        return CheckpointSettings((), base.origin, base.on_failure, location)
    return configured


# --- writing a checkpoint after a run -------------------------------------------------------------
@dataclass(frozen=True)
class Anchored:
    checkpoint: Checkpoint | None
    written: tuple[str, ...] = ()
    failed: tuple[str, ...] = ()  # "destination: error"


def _latest_signed(store: CheckpointStore, verifiers: Sequence[Verifier]) -> Checkpoint | None:
    for name in sorted((n for n in store.names() if _NAME_RE.match(n)), reverse=True):
        try:
            return open_checkpoint(store.get(name), verifiers, what=name)
        except VerificationError:
            continue  # not ours, or damaged: `tfaudit verify --checkpoints` reports it
    return None


def _cache_path(ledger: Path) -> Path:
    return ledger.with_name(ledger.name + ".checkpoint")


def anchor(ledger: Path, signer: Signer, settings: CheckpointSettings, env: Mapping[str, str]) -> Anchored:
    """Sign a checkpoint of the ledger as it is now and store it with a consistency proof from the
    previous one. Refuses to sign when the ledger no longer extends the previous checkpoint."""
    from tfaudit.trail.signing import Verifier as _Verifier, key_id_for

    public = signer_public_key(signer)
    own = [_Verifier(public, key_id_for(public), "signing key")]
    stores = settings.stores(env)
    with _locked_ledger(ledger) as lines:
        if not lines:
            return Anchored(None)
        origin = settings.origin or default_origin(lines[0])
        tree = merkle.Tree.from_data(lines)
        # What this key signed before: the newest checkpoint in the first destination that can be read
        # (a missing directory or a write-only S3 role cannot), and the copy cached beside the ledger.
        stored: Checkpoint | None = None
        for store in (s for s in stores if s.readable):
            try:
                stored = _latest_signed(store, own)
                break
            except InputError:
                continue
        cached: Checkpoint | None = None
        cache = _cache_path(ledger)
        if cache.exists():
            try:
                cached = open_checkpoint(cache.read_bytes(), own, what=str(cache))
            except (OSError, VerificationError):
                cached = None
        where = next((s.describe() for s in stores if s.readable), "SRC")
        hint = f"run 'tfaudit verify {ledger} --public-key PUB --checkpoints {where}' to see what changed"
        for earlier in (c for c in (stored, cached) if c is not None):
            if earlier.size > tree.size:
                raise DeliveryError(f"the ledger has {tree.size} records but a checkpoint signed {earlier.size}: "
                                    "records were removed; no new checkpoint was signed", hint=hint)
            if tree.root(earlier.size) != earlier.root:
                raise DeliveryError(f"the ledger's first {earlier.size} records no longer match the checkpoint "
                                    "signed for them: history was rewritten; no new checkpoint was signed", hint=hint)
        prev = stored or cached
        proof: dict[str, Any] | None = None
        if prev is not None:
            if prev.size == tree.size:
                return Anchored(prev)
            proof = {"from_size": prev.size, "from_root": prev.root_b64, "to_size": tree.size,
                     "to_root": base64.b64encode(tree.root()).decode(),
                     "hashes": [base64.b64encode(h).decode() for h in tree.consistency_proof(prev.size)]}
        cp = Checkpoint(origin, tree.size, tree.root())
        note = cp.sign(signer)
        written: list[str] = []
        failed: list[str] = []
        for store in stores:
            try:
                store.store(cp, note, proof)
                written.append(store.describe())
            except DeliveryError as e:
                failed.append(f"{store.describe()}: {e}")
        try:
            _cache_path(ledger).write_text(note)
        except OSError as e:
            log.warning("checkpoint.cache_unwritable", path=str(_cache_path(ledger)), error=e.strerror)
    log.info("checkpoint.signed", size=cp.size, root=cp.root_b64, written=written, failed=failed)
    return Anchored(cp, tuple(written), tuple(failed))


def anchor_after_run(ledger: Path, signer: Signer, option: str | None, env: Mapping[str, str], cfg: Config,
                     warn: Callable[[str], None]) -> int:
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
    for p in problems:
        warn(f"tfaudit: {'error' if settings.on_failure is OnFailure.FAIL else 'warning'}: checkpoint: {p}")
    if problems and settings.on_failure is OnFailure.FAIL:
        return int(ExitCode.AUDIT_WRITE)
    return 0


# --- verifying a ledger against its checkpoints ----------------------------------------------------
class CheckpointProblemKind(str, Enum):
    NONE_FOUND = "no_checkpoints"
    BAD_CHECKPOINT = "bad_checkpoint"
    TRUNCATED = "truncated"
    REWRITTEN = "rewritten"
    FORK = "fork"
    UNPROVEN = "unproven"


@dataclass(frozen=True)
class CheckpointProblem:
    kind: CheckpointProblemKind
    where: str
    message: str

    def as_dict(self) -> dict[str, str]:
        return {"kind": self.kind.value, "where": self.where, "message": self.message}


@dataclass
class CheckpointReport:
    source: str
    ledger_size: int = 0
    checkpoints: int = 0
    latest: Checkpoint | None = None
    problems: list[CheckpointProblem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def add(self, kind: CheckpointProblemKind, where: str, message: str) -> None:
        self.problems.append(CheckpointProblem(kind, where, message))

    def as_dict(self) -> dict[str, Any]:
        return {"source": self.source, "ok": self.ok, "ledger_size": self.ledger_size,
                "checkpoints": self.checkpoints,
                "latest": None if self.latest is None else {"origin": self.latest.origin, "size": self.latest.size,
                                                            "root": self.latest.root_b64},
                "problems": [p.as_dict() for p in self.problems]}


def _stored_proof(store: CheckpointStore, name: str, names: set[str]) -> dict[str, Any] | None:
    proof_name = name.replace(CHECKPOINT_SUFFIX, PROOF_SUFFIX)
    if proof_name not in names:
        return None
    try:
        doc = json.loads(store.get(proof_name))
        return doc if isinstance(doc, dict) else None
    except (ValueError, InputError):
        return None


def _b64_hashes(values: Any) -> list[bytes]:
    if not isinstance(values, list):
        raise VerificationError("proof hashes are not a list")
    try:
        return [base64.b64decode(v, validate=True) for v in values]
    except (binascii.Error, ValueError, TypeError):
        raise VerificationError("a proof hash is not base64") from None


def check_ledger(ledger: Path, store: CheckpointStore, verifiers: Sequence[Verifier]) -> CheckpointReport:
    """Check the ledger against every checkpoint in store signed by one of verifiers."""
    report = CheckpointReport(store.describe())
    lines = read_lines(ledger)
    report.ledger_size = len(lines)
    names = store.names()
    name_set = set(names)
    found: list[tuple[str, Checkpoint]] = []
    for name in names:
        if not name.endswith(CHECKPOINT_SUFFIX):
            continue
        try:
            found.append((name, open_checkpoint(store.get(name), verifiers, what=name)))
        except VerificationError as e:
            report.add(CheckpointProblemKind.BAD_CHECKPOINT, name, str(e))
    report.checkpoints = len(found)
    if not found:
        report.add(CheckpointProblemKind.NONE_FOUND, report.source,
                   "no checkpoint signed by the given key(s) found: nothing anchors this ledger")
        return report
    found.sort(key=lambda nc: (nc[1].size, nc[0]))
    leaves = [merkle.leaf_hash(line) for line in lines]
    roots = merkle.roots_at(leaves, {cp.size for _, cp in found if cp.size <= len(leaves)})
    tree: merkle.Tree | None = None

    # successive checkpoints must extend one another
    for (name_a, a), (name_b, b) in zip(found, found[1:]):
        pair = f"{name_a} -> {name_b}"
        if a.size == b.size:
            if a.root != b.root:
                report.add(CheckpointProblemKind.FORK, pair,
                           f"two different roots signed for tree size {a.size}: the log forked")
            continue
        doc = _stored_proof(store, name_b, name_set)
        hashes: list[bytes] | None = None
        if doc is not None and doc.get("from_size") == a.size and doc.get("from_root") == a.root_b64:
            try:
                hashes = _b64_hashes(doc.get("hashes"))
            except VerificationError:
                hashes = None
        if hashes is None and b.size <= len(leaves):
            tree = tree or merkle.Tree(leaves)
            hashes = tree.consistency_proof(a.size, b.size)
        if hashes is None:
            report.add(CheckpointProblemKind.UNPROVEN, pair,
                       f"no consistency proof from size {a.size} to {b.size} is stored, and the ledger is too short to make one")
            continue
        try:
            merkle.verify_consistency(a.size, b.size, hashes, a.root, b.root)
        except VerificationError:
            report.add(CheckpointProblemKind.FORK, pair,
                       f"checkpoint of size {b.size} does not extend the one of size {a.size}: "
                       "the log was rewritten between them (a fork)")

    # the ledger must still hold every signed tree
    mismatched = [(n, cp) for n, cp in found if cp.size <= len(leaves) and roots[cp.size] != cp.root]
    if mismatched:
        name, cp = mismatched[0]
        report.add(CheckpointProblemKind.REWRITTEN, name,
                   f"the ledger's first {cp.size} records do not hash to the root signed in this checkpoint: "
                   f"records were rewritten after it was signed ({len(mismatched)} of {len(found)} checkpoints differ)")
    latest_name, latest = found[-1]
    report.latest = latest
    if latest.size > len(leaves):
        report.add(CheckpointProblemKind.TRUNCATED, latest_name,
                   f"the ledger has {len(leaves)} records but this checkpoint signed {latest.size}: "
                   f"{latest.size - len(leaves)} record(s) were removed since (the newest, or others with the rest "
                   "rewritten)" if not mismatched else
                   f"the ledger has {len(leaves)} records but this checkpoint signed {latest.size}")
    return report
