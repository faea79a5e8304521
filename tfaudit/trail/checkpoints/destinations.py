"""Where checkpoints are kept, apart from the ledger: a directory, an S3 prefix with Object Lock, a webhook."""

from __future__ import annotations

import json
import os
import time
from datetime import datetime, timedelta, timezone
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Any, ClassVar, Protocol

from tfaudit.errors import DeliveryError, InputError, TfauditError, UsageError
from tfaudit.trail.checkpoints.note import CHECKPOINT_SUFFIX, PROOF_SUFFIX, Checkpoint

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

    def __post_init__(self) -> None:
        from tfaudit.sinks._keys import clean_prefix

        self.prefix = clean_prefix(self.prefix)  # like sink prefixes: no '..', no empty segments

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

