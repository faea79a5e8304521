"""The S3 ledger store, `s3://BUCKET/PREFIX`: many machines append to one chain with conditional writes.

Object layout under PREFIX (every object immutable except the head hint):

    PREFIX/chain/000000000001.jsonl   one object per appended batch, keyed by the chain position of its
    PREFIX/chain/000000000004.jsonl   first line, zero-padded to 12 digits so that S3's lexicographic
    PREFIX/chain/000000000007.jsonl   listing is chain order; the exact signed lines, one per line
    PREFIX/head.json                  a hint: {"key", "seq"} of the newest batch known to its writer
    PREFIX/deliveries/SINK/...        what each sink has received (tfaudit.trail.stores.s3_outbox)

Appending (no lock service): read the tail (GET head.json, LIST chain/ after the hint, GET the last
batch: its last line's seq and digest), chain and sign the batch onto it, then create
`chain/<tail+1>.jsonl` with `PutObject(IfNoneMatch="*")`. The create is the commit: of two writers
that read the same tail, exactly one creates the key; the other gets 412 PreconditionFailed,
re-reads the tail, re-seals and retries (bounded, full jitter). Because every batch key is one past
a batch's last line, batches can neither overlap nor fork. Then the head hint is moved forward
with `PutObject(IfMatch=<its ETag>)` (`IfNoneMatch="*"` when it does not exist yet); a writer
that loses that race re-reads it and stops when it already points at or past its own batch. The
hint only makes finding the tail cheap (one short LIST); it is never trusted for the chain.

Reading forward or backward lists `chain/` (1,000 keys per request) and GETs the batches, up
to 32 at a time, in order. Positions come from the keys, so a deleted or inserted batch shows up
in `tfaudit verify` as a sequence or prev-digest break.

Options as URL query parameters: `sse=AES256|aws:kms|aws:kms:dsse` (default AES256),
`kms_key_id=...`, `object_lock=GOVERNANCE:DAYS|COMPLIANCE:DAYS` (batch objects get that retention;
the bucket needs Object Lock enabled), `region=...`, `profile=...`, `endpoint_url=...`; otherwise
credentials, region and endpoint (`AWS_ENDPOINT_URL`) resolve the boto3 way (tfaudit._aws).
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import time
from collections import deque
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any

from tfaudit import _aws
from tfaudit.errors import InputError, LedgerError, UsageError
from tfaudit.trail.ledger import seal_batch
from tfaudit.trail.signing import line_digest
from tfaudit.trail.store import Appended, Tail, SeqView, parsed_records
from tfaudit.trail.stores._common import MAX_ATTEMPTS, AppendStats, backoff, lost_too_often, query_options, tail_of_line


if TYPE_CHECKING:
    from tfaudit.trail.signing import Signer

SSE_CHOICES = ("AES256", "aws:kms", "aws:kms:dsse")
LOCK_MODES = ("GOVERNANCE", "COMPLIANCE")
_BATCH = re.compile(r"(\d{12})\.jsonl$")
_BUCKET = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
_OPTIONS = {"sse", "kms_key_id", "object_lock", "region", "profile", "endpoint_url"}
_PREFETCH = 32
_CONFLICT_CODES = ("PreconditionFailed", "ConditionalRequestConflict", "412", "409")


def batch_key(prefix: str, first_seq: int) -> str:
    return f"{prefix}chain/{first_seq:012d}.jsonl"


def parse_url(url: str) -> tuple[str, str, dict[str, str]]:
    """(bucket, prefix ending in '/' or empty, options) of `s3://BUCKET/PREFIX?opt=v`."""
    rest = url[len("s3://"):] if url.lower().startswith("s3://") else url
    rest, _, query = rest.partition("?")
    bucket, _, prefix = rest.partition("/")
    if not _BUCKET.match(bucket) or ".." in bucket:
        raise UsageError(f"{bucket!r} in the ledger URL {url} is not a valid S3 bucket name",
                         hint="use s3://BUCKET/PREFIX")
    parts = [p for p in prefix.split("/") if p]
    if any(p in (".", "..") for p in parts):
        raise UsageError(f"the ledger URL {url} has a '.' or '..' segment", hint="use s3://BUCKET/PREFIX")
    opts = query_options(query, _OPTIONS, url)
    if opts.get("sse", "AES256") not in SSE_CHOICES:
        raise UsageError(f"sse={opts['sse']} in the ledger URL is not one of {', '.join(SSE_CHOICES)}")
    if opts.get("kms_key_id") and not opts.get("sse", "").startswith("aws:kms"):
        raise UsageError("kms_key_id in the ledger URL needs sse=aws:kms")
    if "object_lock" in opts:
        mode, _, days = opts["object_lock"].partition(":")
        if mode not in LOCK_MODES or not days.isdigit() or not 1 <= int(days) <= 36500:
            raise UsageError(f"object_lock={opts['object_lock']} in the ledger URL is not MODE:DAYS",
                             hint="use object_lock=GOVERNANCE:365 or object_lock=COMPLIANCE:365")
    return bucket, "".join(p + "/" for p in parts), opts


class S3Store:
    """The S3 store (see the module docstring)."""

    def __init__(self, client: Any, bucket: str, prefix: str, options: Mapping[str, str] | None = None) -> None:
        self.client = client
        self.bucket = bucket
        self.prefix = prefix
        self.options = dict(options or {})
        self.stats = AppendStats()
        self._errors = _aws.botocore_errors()
        self._known: tuple[str, Tail | None] | None = None

    @classmethod
    def from_url(cls, url: str, env: Mapping[str, str]) -> S3Store:
        bucket, prefix, opts = parse_url(url)
        try:
            client = _aws.client("s3", _aws.AwsSettings(opts.get("region"), opts.get("profile"), opts.get("endpoint_url")),
                                 env, max_attempts=5, default_region="us-east-1", max_pool_connections=_PREFETCH)
        except ImportError as e:
            raise UsageError("an s3:// ledger needs boto3", hint="pip install 'tfaudit[aws]'") from e
        except _aws.botocore_errors() as e:
            raise UsageError(f"cannot set up S3 for the ledger s3://{bucket}/{prefix}: {_aws.error_text(e)}",
                             hint="check AWS credentials, region and AWS_ENDPOINT_URL") from e
        return cls(client, bucket, prefix, opts)

    def __repr__(self) -> str:
        return f"S3Store({self.url!r})"

    @property
    def url(self) -> str:
        return f"s3://{self.bucket}/{self.prefix.rstrip('/')}" if self.prefix else f"s3://{self.bucket}"

    @property
    def local_path(self) -> None:
        return None

    # -- low-level ----------------------------------------------------------------------
    def _fail(self, what: str, e: BaseException, *, write: bool) -> Exception:
        msg = f"{what} {self.url}: {_aws.error_text(e)}"
        if write:
            return LedgerError(msg, hint="check the bucket, AWS credentials (s3:PutObject) and AWS_ENDPOINT_URL")
        return InputError(msg, hint="check the bucket, AWS credentials (s3:GetObject, s3:ListBucket) and AWS_ENDPOINT_URL")

    def get(self, key: str) -> tuple[bytes, str] | None:
        """(body, ETag) of an object, None when it does not exist."""
        try:
            resp = self.client.get_object(Bucket=self.bucket, Key=key)
            return resp["Body"].read(), str(resp.get("ETag", ""))
        except self._errors as e:
            if _aws.error_code(e) in ("NoSuchKey", "404"):
                return None
            raise self._fail(f"cannot read {key} in", e, write=False) from e

    def keys(self, sub: str, start_after: str = "") -> Iterator[str]:
        """Keys under PREFIX/sub, in S3's (lexicographic) order, after start_after."""
        args: dict[str, Any] = {"Bucket": self.bucket, "Prefix": self.prefix + sub}
        if start_after:
            args["StartAfter"] = start_after
        try:
            for page in self.client.get_paginator("list_objects_v2").paginate(**args):
                for obj in page.get("Contents", ()):
                    yield str(obj["Key"])
        except self._errors as e:
            raise self._fail("cannot list", e, write=False) from e

    def put(self, key: str, body: bytes, *, if_none_match: bool = False, if_match: str | None = None,
            locked: bool = False, content_type: str = "application/x-ndjson") -> str | None:
        """Write an object; returns its ETag, or None when the condition failed (someone else won)."""
        args: dict[str, Any] = {
            "Bucket": self.bucket, "Key": key, "Body": body, "ContentType": content_type,
            "ChecksumSHA256": base64.b64encode(hashlib.sha256(body).digest()).decode("ascii"),
            "ServerSideEncryption": self.options.get("sse", "AES256"),
        }
        if self.options.get("kms_key_id"):
            args["SSEKMSKeyId"] = self.options["kms_key_id"]
        if locked and self.options.get("object_lock"):
            mode, _, days = self.options["object_lock"].partition(":")
            args["ObjectLockMode"] = mode
            args["ObjectLockRetainUntilDate"] = datetime.now(timezone.utc) + timedelta(days=int(days))
        if if_none_match:
            args["IfNoneMatch"] = "*"
        if if_match:
            args["IfMatch"] = if_match
        try:
            return str(self.client.put_object(**args).get("ETag", ""))
        except self._errors as e:
            code = _aws.error_code(e)
            status = getattr(e, "response", {}).get("ResponseMetadata", {}).get("HTTPStatusCode")
            if code in _CONFLICT_CODES or status in (409, 412):
                return None
            raise self._fail(f"cannot write {key} in", e, write=True) from e

    # -- the chain -----------------------------------------------------------------------
    def batch_keys(self, start_after: str = "") -> Iterator[tuple[int, str]]:
        for key in self.keys("chain/", start_after):
            m = _BATCH.search(key)
            if m and key == batch_key(self.prefix, int(m.group(1))):
                yield int(m.group(1)), key

    def _head_hint(self) -> tuple[str, str | None]:
        """(key of the newest batch the hint knows, or "", the hint's ETag or None when absent)."""
        got = self.get(self.prefix + "head.json")
        if got is None:
            return "", None
        try:
            key = str(json.loads(got[0])["key"])
        except (ValueError, KeyError, TypeError):
            key = ""
        return (key if _BATCH.search(key) and key.startswith(self.prefix + "chain/") else ""), got[1]

    def _last_batch(self, *, trust_hint: bool = True) -> tuple[int, str] | None:
        hint, _ = self._head_hint() if trust_hint else ("", None)
        last: tuple[int, str] | None = None
        for last in self.batch_keys(hint):
            pass
        if last is None and hint:
            m = _BATCH.search(hint)
            assert m is not None
            last = (int(m.group(1)), hint)
        return last

    def tail(self) -> Tail:
        last = self._last_batch()
        got = self.get(last[1]) if last else None
        if last is not None and got is None:  # a hint to a missing batch: find the tail the long way
            last = self._last_batch(trust_hint=False)
            got = self.get(last[1]) if last else None
        if last is None:
            return Tail(0, None)
        return self._tail_of(last[0], last[1], got)

    def _tail_of(self, first: int, key: str, got: tuple[bytes, str] | None) -> Tail:
        if got is None:
            raise LedgerError(f"batch {key} of {self.url} vanished while reading the tail",
                              hint=f"run 'tfaudit verify {self.url}'")
        lines = got[0].splitlines(keepends=True)
        if not lines or not lines[-1].endswith(b"\n"):
            raise LedgerError(f"the last batch of {self.url} ({key}) is empty or ends with an incomplete line",
                              hint=f"run 'tfaudit verify {self.url}'; tfaudit will not append after a damaged tail")
        return tail_of_line(self.url, first + len(lines) - 1, lines[-1][:-1])

    def _tail_after(self, start_after: str, known: Tail | None) -> Tail:
        """The tail, when every batch up to `start_after` is known (and `known` is the tail there, if
        known): one LIST, and one GET only when newer batches exist. Shortens the race window."""
        last: tuple[int, str] | None = None
        for last in self.batch_keys(start_after):
            pass
        if last is None:
            return known if known is not None else self.tail()
        return self._tail_of(last[0], last[1], self.get(last[1]))

    def exists(self) -> bool:
        return next(self.batch_keys(), None) is not None

    def check_writable(self) -> None:
        try:
            self.client.head_bucket(Bucket=self.bucket)
        except self._errors as e:
            raise self._fail("cannot reach the ledger bucket of", e, write=True) from e
        try:
            self.tail()
        except InputError as e:
            raise LedgerError(e.message, hint=e.hint) from e

    def append(self, records: Sequence[Mapping[str, Any]], signer: Signer) -> list[Appended]:
        """Compare-and-append: create the batch object one past the tail, or re-read and retry."""
        if not records:
            return []
        t0 = time.monotonic()
        start = self._known  # this process's own last batch, if it appended before
        for attempt in range(MAX_ATTEMPTS):
            try:
                tail = self.tail() if start is None else self._tail_after(*start)
            except InputError as e:
                raise LedgerError(e.message, hint=e.hint) from e
            out = seal_batch(records, tail, signer)
            key = batch_key(self.prefix, tail.seq + 1)
            body = b"".join(a.line + b"\n" for a in out)
            if self.put(key, body, if_none_match=True, locked=True) is not None:
                self._known = (key, Tail(out[-1].seq, line_digest(out[-1].line)))
                self._move_head(key, out[-1].seq)
                self.stats.appends += 1
                self.stats.latencies.append(time.monotonic() - t0)
                return out
            self.stats.retries += 1
            start = (batch_key(self.prefix, tail.seq), None)  # the winner's batch is the next key on
            backoff(attempt)
        raise lost_too_often(self.url, MAX_ATTEMPTS)

    def _move_head(self, key: str, seq: int) -> None:
        """Point the head hint at key unless it already points at or past it (IfMatch; best effort)."""
        body = json.dumps({"key": key, "seq": seq}).encode()
        for attempt in range(8):
            current, etag = self._head_hint()
            if current and current >= key:
                return
            try:
                done = self.put(self.prefix + "head.json", body, if_none_match=etag is None, if_match=etag,
                                content_type="application/json")
            except LedgerError:
                return  # only a hint: the next writer finds the tail by listing
            if done is not None:
                return
            backoff(attempt)

    # -- reading -------------------------------------------------------------------------
    def _fetch(self, batches: Sequence[tuple[int, str]]) -> Iterator[tuple[int, list[bytes]]]:
        """(first position, lines) of each batch, in the given order, fetched up to _PREFETCH at a time."""
        if not batches:
            return
        with ThreadPoolExecutor(max_workers=min(_PREFETCH, len(batches)), thread_name_prefix="tfaudit-s3") as pool:
            window: deque[tuple[int, str, Future[tuple[bytes, str] | None]]] = deque()
            it = iter(batches)
            for first, key in it:
                window.append((first, key, pool.submit(self.get, key)))
                if len(window) >= _PREFETCH * 2:
                    break
            while window:
                first, key, fut = window.popleft()
                nxt = next(it, None)
                if nxt is not None:
                    window.append((nxt[0], nxt[1], pool.submit(self.get, nxt[1])))
                got = fut.result()
                if got is None:
                    raise InputError(f"batch {key} of {self.url} vanished while reading",
                                     hint="retry; if it persists, run 'tfaudit verify' on the store")
                yield first, got[0].splitlines(keepends=True)

    def lines(self, start: int = 1) -> Iterator[tuple[int, bytes]]:
        batches = list(self.batch_keys())
        i = 0
        while i + 1 < len(batches) and batches[i + 1][0] <= start:
            i += 1
        for first, lines in self._fetch(batches[i:]):
            for n, raw in enumerate(lines, start=first):
                if n >= start:
                    yield n, raw

    def lines_backward(self) -> Iterator[tuple[int, bytes]]:
        batches = list(self.batch_keys())
        batches.reverse()
        for first, lines in self._fetch(batches):
            for n in range(len(lines) - 1, -1, -1):
                yield first + n, lines[n]

    def snapshot(self) -> SeqView:
        return SeqView(self)

    def records(self) -> Iterator[dict[str, Any]]:
        return parsed_records(self.lines())

    def import_lines(self, lines: Sequence[bytes]) -> int:
        """Put an existing chain's exact lines in an empty store as batches at their own positions."""
        if self.exists():
            raise UsageError(f"{self.url} already holds records", hint="import into an empty store (a new prefix)")
        n, step = 0, 1000
        while n < len(lines):
            chunk = lines[n:n + step]
            body = b"".join(line.rstrip(b"\n") + b"\n" for line in chunk)
            if self.put(batch_key(self.prefix, n + 1), body, if_none_match=True, locked=True) is None:
                raise LedgerError(f"another writer appended to {self.url} during the import",
                                  hint="import into an empty store that nothing else writes to yet")
            n += len(chunk)
        if lines:
            self._move_head(batch_key(self.prefix, n - len(chunk) + 1), n)
        return n
