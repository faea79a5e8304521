"""s3: one object per run, `<prefix>/<yyyy>/<mm>/<dd>/<workspace>/<run_id>.jsonl`.

Partition-friendly for Athena (date, then workspace). Each object holds every record of
the run this sink's filter accepts, in ledger order, so re-delivery rewrites the same key
with the same or more records, never a duplicate or a shorter object. Every key part is
sanitized: a workspace, prefix or id cannot climb out of the prefix. Objects carry a
SHA-256 checksum S3 checks on receipt (and an MD5, which S3 Object Lock requires),
server-side encryption (SSE-S3 by default, or SSE-KMS with a key), and optionally an
Object Lock retention so nobody can delete the trail before it expires.
"""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta, timezone
from typing import Any, ClassVar

from tfaudit import _aws
from tfaudit.errors import SinkError
from tfaudit.redact import Redactor
from tfaudit.sinks._keys import key_part
from tfaudit.sinks.base import Batch, DeliveryConfig, Item, Severity, SinkSpec, encode
from tfaudit.sinks._settings import AWS_KEYS, Err, aws_settings, opt_str, req_str

SSE_CHOICES = ("AES256", "aws:kms", "aws:kms:dsse")
LOCK_MODES = ("GOVERNANCE", "COMPLIANCE")
_DATE = re.compile(r"^(\d{4})-(\d\d)-(\d\d)T")
_BUCKET = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")


def object_key(prefix: str, started_at: str, workspace: str, run_id: str) -> str:
    m = _DATE.match(started_at or "")
    date = list(m.groups()) if m else ["unknown-date"]
    parts = [key_part(p) for p in prefix.split("/") if p.strip()]
    return "/".join([*parts, *date, key_part(workspace or "default"), key_part(run_id) + ".jsonl"])


class S3Sink:
    kind: ClassVar[str] = "s3"
    keys: ClassVar[frozenset[str]] = frozenset({"bucket", "prefix", "sse", "kms_key_id", "object_lock"}) | AWS_KEYS
    takes_format: ClassVar[bool] = True
    network: ClassVar[bool] = True
    default_types: ClassVar[frozenset[str] | None] = None
    default_min_severity: ClassVar[Severity] = Severity.INFO

    def __init__(self, spec: SinkSpec, client: Any) -> None:
        self.spec = spec
        self.client = client
        self.bucket: str = spec.settings["bucket"]
        self.prefix: str = spec.settings.get("prefix", "tfaudit")

    @classmethod
    def parse_settings(cls, err: Err, body: Mapping[str, Any], ctx: Any) -> dict[str, Any]:
        bucket = req_str(err, body, "bucket")
        if not _BUCKET.match(bucket) or ".." in bucket:
            raise err(f"bucket {bucket!r} is not a valid S3 bucket name")
        out: dict[str, Any] = {"bucket": bucket, "prefix": opt_str(err, body, "prefix", "tfaudit") or "tfaudit",
                               **aws_settings(err, body)}
        if any(p in (".", "..") for p in out["prefix"].split("/")):
            raise err("prefix must not contain '.' or '..' segments")
        sse = opt_str(err, body, "sse", "AES256") or "AES256"
        if sse not in SSE_CHOICES:
            raise err(f"sse must be one of {', '.join(SSE_CHOICES)}, not {sse!r}")
        out["sse"] = sse
        kms_key = opt_str(err, body, "kms_key_id")
        if kms_key and not sse.startswith("aws:kms"):
            raise err('kms_key_id needs sse = "aws:kms"')
        if kms_key:
            out["kms_key_id"] = kms_key
        if "object_lock" in body:
            lock = body["object_lock"]
            if not isinstance(lock, Mapping) or set(lock) - {"mode", "days"}:
                raise err('object_lock must be { mode = "GOVERNANCE"|"COMPLIANCE", days = N }')
            mode, days = lock.get("mode"), lock.get("days")
            if mode not in LOCK_MODES:
                raise err(f"object_lock.mode must be GOVERNANCE or COMPLIANCE, not {mode!r}")
            if isinstance(days, bool) or not isinstance(days, int) or not 1 <= days <= 36500:
                raise err("object_lock.days must be a whole number from 1 to 36500")
            out["object_lock"] = {"mode": mode, "days": days}
        return out

    @classmethod
    def create(cls, spec: SinkSpec, env: Mapping[str, str], *, redactor: Redactor,
               delivery: DeliveryConfig) -> S3Sink:
        try:
            client = _aws.client("s3", _aws.AwsSettings(spec.settings.get("region"), spec.settings.get("profile"),
                                                        spec.settings.get("endpoint_url")), env,
                                 connect_timeout=min(5.0, spec.timeout_seconds), read_timeout=spec.timeout_seconds,
                                 max_attempts=delivery.max_attempts, default_region="us-east-1")
        except ImportError as e:
            raise SinkError("the s3 sink needs boto3", hint="pip install 'tfaudit[aws]'") from e
        except _aws.botocore_errors() as e:
            raise SinkError(f"cannot set up S3: {_aws.error_text(e)}") from e
        return cls(spec, client)

    def _put_args(self, key: str, body: bytes, run_items: Sequence[Item]) -> dict[str, Any]:
        s = self.spec.settings
        args: dict[str, Any] = {
            "Bucket": self.bucket, "Key": key, "Body": body,
            "ContentType": "application/x-ndjson",
            "ChecksumAlgorithm": "SHA256",
            "ChecksumSHA256": base64.b64encode(hashlib.sha256(body).digest()).decode("ascii"),
            "ContentMD5": base64.b64encode(hashlib.md5(body, usedforsecurity=False).digest()).decode("ascii"),
            "ServerSideEncryption": s.get("sse", "AES256"),
            "Metadata": {"tfaudit-records": str(len(run_items)), "tfaudit-first-seq": str(run_items[0].seq),
                         "tfaudit-last-seq": str(run_items[-1].seq), "tfaudit-format": self.spec.format},
        }
        if s.get("kms_key_id"):
            args["SSEKMSKeyId"] = s["kms_key_id"]
        lock = s.get("object_lock")
        if lock:
            args["ObjectLockMode"] = lock["mode"]
            args["ObjectLockRetainUntilDate"] = datetime.now(timezone.utc) + timedelta(days=int(lock["days"]))
        return args

    def send(self, batch: Batch) -> None:
        by_run: dict[str, list[Item]] = {}
        for it in batch.items:
            by_run.setdefault(it.run_id, []).append(it)
        errors = _aws.botocore_errors()
        for run_id, pending in by_run.items():
            if batch.remaining() <= 0:
                batch.fail(pending, "not sent before the delivery deadline")
                continue
            whole = sorted(batch.run_items(run_id) or pending, key=lambda it: it.seq)
            first = whole[0].record
            run = first.get("run") or {}
            key = object_key(self.prefix, str(run.get("started_at") or first.get("time") or ""),
                             str(run.get("workspace") or "default"), run_id)
            body = b"".join(encode(it, self.spec.format) + b"\n" for it in whole)
            args = self._put_args(key, body, whole)
            try:
                resp = self.client.put_object(**args)
            except errors as e:
                batch.fail(pending, f"PutObject s3://{self.bucket}/{key}: {_aws.error_text(e)}")
                continue
            echoed = resp.get("ChecksumSHA256")
            if echoed and echoed != args["ChecksumSHA256"]:
                batch.fail(pending, f"S3 stored s3://{self.bucket}/{key} with a different SHA-256 checksum")
                continue
            batch.ok(pending)

    def confirm(self, items: Sequence[Item]) -> set[str]:
        return set()  # the key is stable and the object a superset: re-sending is idempotent
