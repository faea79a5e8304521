"""cloudwatch: one log event per record in a CloudWatch Logs stream.

The stream name is a template (`{workspace}`, `{date}`), so each workspace gets its own.
With `create = true` the group and stream are made when missing and a group it creates
gets `retention_days`. Events go out with `PutLogEvents` in batches that keep the
service limits: at most 10,000 events and 1,048,576 bytes (message bytes + 26 per event)
per call, each event at most 256 KiB, in time order. An event's timestamp is the
record's time, or the delivery time when the record is older than 12 hours (CloudWatch
rejects events older than 14 days or than the group's retention); the message always
carries the record's own time. A record over the event limit is sent as a stub naming
its id, seq and digest; the full record stays in the ledger and the other sinks.

PutLogEvents has no idempotency key, so after a crash mid-send the stream is read back
(`GetLogEvents`) for the records left in doubt before anything is sent again.
"""

from __future__ import annotations

import hashlib
import json
import re
import time
from collections.abc import Iterator, Mapping, Sequence
from datetime import datetime
from typing import Any, ClassVar

from tfaudit import _aws
from tfaudit.errors import SinkError
from tfaudit.redact import Redactor
from tfaudit.sinks.base import Batch, DeliveryConfig, Item, Severity, SinkSpec, encode
from tfaudit.sinks._settings import AWS_KEYS, Err, aws_settings, opt_bool, opt_int, opt_str, req_str

MAX_BATCH_EVENTS = 10_000
MAX_BATCH_BYTES = 1_048_576
EVENT_OVERHEAD = 26
MAX_EVENT_BYTES = 262_144 - EVENT_OVERHEAD
RECENT_MS = 12 * 3600 * 1000
FUTURE_MS = 3600 * 1000
CONFIRM_MAX_PAGES = 100
RETENTION_DAYS = (1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922,
                  3288, 3653)
_GROUP = re.compile(r"^[\w#/.\-]{1,512}$")
_STREAM_BAD = re.compile(r"[:*\s]")


def event_time_ms(record: Mapping[str, Any], now_ms: int) -> int:
    try:
        ts = int(datetime.fromisoformat(str(record.get("time")).replace("Z", "+00:00")).timestamp() * 1000)
    except ValueError:
        return now_ms
    return ts if now_ms - RECENT_MS <= ts <= now_ms + FUTURE_MS else now_ms


def message_for(item: Item, fmt: str) -> str:
    msg = encode(item, fmt)
    if len(msg) <= MAX_EVENT_BYTES:
        return msg.decode("utf-8")
    stub = {"tfaudit_stub": True, "id": item.id, "seq": item.seq, "type": item.type, "run_id": item.run_id,
            "time": item.record.get("time"), "bytes": len(msg),
            "line_sha256": hashlib.sha256(item.line).hexdigest(),
            "reason": "record larger than a CloudWatch Logs event; the full record is in the ledger"}
    return json.dumps(stub, separators=(",", ":"), sort_keys=True)


def plan_batches(events: Sequence[tuple[int, str, Item]]) -> Iterator[list[tuple[int, str, Item]]]:
    """Split time-ordered events into PutLogEvents calls within the count and byte limits."""
    batch: list[tuple[int, str, Item]] = []
    size = 0
    for ev in events:
        cost = len(ev[1].encode("utf-8")) + EVENT_OVERHEAD
        if batch and (len(batch) >= MAX_BATCH_EVENTS or size + cost > MAX_BATCH_BYTES):
            yield batch
            batch, size = [], 0
        batch.append(ev)
        size += cost
    if batch:
        yield batch


def stream_name(template: str, record: Mapping[str, Any]) -> str:
    run = record.get("run") or {}
    values = {"workspace": str(run.get("workspace") or "default"), "date": str(record.get("time") or "")[:10] or "unknown"}
    name = re.sub(r"\{(workspace|date)\}", lambda m: values[m.group(1)], template)
    return _STREAM_BAD.sub("_", name)[:512] or "default"


class CloudWatchSink:
    kind: ClassVar[str] = "cloudwatch"
    keys: ClassVar[frozenset[str]] = frozenset({"log_group", "log_stream", "create", "retention_days"}) | AWS_KEYS
    takes_format: ClassVar[bool] = True
    network: ClassVar[bool] = True
    default_types: ClassVar[frozenset[str] | None] = None
    default_min_severity: ClassVar[Severity] = Severity.INFO

    def __init__(self, spec: SinkSpec, client: Any) -> None:
        self.spec = spec
        self.client = client
        self.group: str = spec.settings["log_group"]
        self.template: str = spec.settings.get("log_stream", "{workspace}")
        self.create_missing = bool(spec.settings.get("create", False))
        self.retention: int | None = spec.settings.get("retention_days")
        self._ready: set[str] = set()

    @classmethod
    def parse_settings(cls, err: Err, body: Mapping[str, Any], ctx: Any) -> dict[str, Any]:
        group = req_str(err, body, "log_group")
        if not _GROUP.match(group):
            raise err(f"log_group {group!r} is not a valid log group name (letters, digits, _ - / . #)")
        stream = opt_str(err, body, "log_stream", "{workspace}") or "{workspace}"
        unknown = set(re.findall(r"\{([^}]*)\}", stream)) - {"workspace", "date"}
        if unknown:
            raise err(f"log_stream: unknown placeholder {{{sorted(unknown)[0]}}} (use {{workspace}} or {{date}})")
        create = opt_bool(err, body, "create", False)
        retention = opt_int(err, body, "retention_days", None, minimum=1, maximum=3653)
        if retention is not None and retention not in RETENTION_DAYS:
            raise err(f"retention_days must be one of CloudWatch's values ({', '.join(map(str, RETENTION_DAYS))})")
        if retention is not None and not create:
            raise err("retention_days applies to a group tfaudit creates: set create = true")
        out: dict[str, Any] = {"log_group": group, "log_stream": stream, "create": create, **aws_settings(err, body)}
        if retention is not None:
            out["retention_days"] = retention
        return out

    @classmethod
    def create(cls, spec: SinkSpec, env: Mapping[str, str], *, redactor: Redactor,
               delivery: DeliveryConfig) -> CloudWatchSink:
        try:
            client = _aws.client("logs", _aws.AwsSettings(spec.settings.get("region"), spec.settings.get("profile"),
                                                          spec.settings.get("endpoint_url")), env,
                                 connect_timeout=min(5.0, spec.timeout_seconds), read_timeout=spec.timeout_seconds,
                                 max_attempts=delivery.max_attempts)
        except ImportError as e:
            raise SinkError("the cloudwatch sink needs boto3", hint="pip install 'tfaudit[aws]'") from e
        except _aws.botocore_errors() as e:
            raise SinkError(f"cannot set up CloudWatch Logs: {_aws.error_text(e)}",
                            hint="set region in the sink block or AWS_REGION") from e
        return cls(spec, client)

    # -- creating what is missing -----------------------------------------------------------
    def _ensure(self, stream: str) -> None:
        errors = _aws.botocore_errors()
        try:
            self.client.create_log_group(logGroupName=self.group)
            if self.retention:
                self.client.put_retention_policy(logGroupName=self.group, retentionInDays=self.retention)
        except errors as e:
            if _aws.error_code(e) != "ResourceAlreadyExistsException":
                raise SinkError(f"cannot create log group {self.group}: {_aws.error_text(e)}") from e
        try:
            self.client.create_log_stream(logGroupName=self.group, logStreamName=stream)
        except errors as e:
            if _aws.error_code(e) != "ResourceAlreadyExistsException":
                raise SinkError(f"cannot create log stream {self.group}/{stream}: {_aws.error_text(e)}") from e
        self._ready.add(stream)

    def _put(self, stream: str, events: list[tuple[int, str, Item]]) -> dict[str, Any]:
        args = {"logGroupName": self.group, "logStreamName": stream,
                "logEvents": [{"timestamp": ts, "message": msg} for ts, msg, _ in events]}
        try:
            resp: dict[str, Any] = self.client.put_log_events(**args)
            return resp
        except _aws.botocore_errors() as e:
            if _aws.error_code(e) != "ResourceNotFoundException":
                raise SinkError(f"PutLogEvents {self.group}/{stream}: {_aws.error_text(e)}") from e
            if not self.create_missing or stream in self._ready:
                raise SinkError(f"log group {self.group} or stream {stream} does not exist",
                                hint="create them, or set create = true in the sink block") from e
        self._ensure(stream)
        try:
            resp = self.client.put_log_events(**args)
            return resp
        except _aws.botocore_errors() as e:
            raise SinkError(f"PutLogEvents {self.group}/{stream}: {_aws.error_text(e)}") from e

    def send(self, batch: Batch) -> None:
        now_ms = int(time.time() * 1000)
        by_stream: dict[str, list[tuple[int, str, Item]]] = {}
        for it in batch.items:
            by_stream.setdefault(stream_name(self.template, it.record), []).append(
                (event_time_ms(it.record, now_ms), message_for(it, self.spec.format), it))
        for stream, events in by_stream.items():
            events.sort(key=lambda ev: (ev[0], ev[2].seq))
            for chunk in plan_batches(events):
                items = [ev[2] for ev in chunk]
                if batch.remaining() <= 0:
                    batch.fail(items, "not sent before the delivery deadline")
                    continue
                try:
                    resp = self._put(stream, chunk)
                except SinkError as e:
                    batch.fail(items, str(e))
                    rest = [ev[2] for ev in events if ev[2].id not in batch.done and ev[2].id not in batch.errors]
                    batch.fail(rest, f"not sent: an earlier PutLogEvents to {stream} failed ({e})")
                    break
                rejected = _rejected_indexes(resp.get("rejectedLogEventsInfo") or {}, len(chunk))
                if rejected:
                    batch.fail([items[i] for i in sorted(rejected)], "CloudWatch rejected the event (too old or too new)")
                batch.ok([it for i, it in enumerate(items) if i not in rejected])

    def confirm(self, items: Sequence[Item]) -> set[str]:
        """Which of items are already in their stream (read back after a crash mid-send)."""
        found: set[str] = set()
        now_ms = int(time.time() * 1000)
        by_stream: dict[str, list[Item]] = {}
        for it in items:
            by_stream.setdefault(stream_name(self.template, it.record), []).append(it)
        for stream, its in by_stream.items():
            wanted = {it.id for it in its}
            start = min(event_time_ms(it.record, now_ms) for it in its) - 1000
            token: str | None = None
            for _ in range(CONFIRM_MAX_PAGES):
                args: dict[str, Any] = {"logGroupName": self.group, "logStreamName": stream, "startTime": start,
                                        "startFromHead": True}
                if token:
                    args["nextToken"] = token
                try:
                    resp = self.client.get_log_events(**args)
                except _aws.botocore_errors() as e:
                    if _aws.error_code(e) == "ResourceNotFoundException":
                        break  # no stream: nothing arrived
                    raise SinkError(f"GetLogEvents {self.group}/{stream}: {_aws.error_text(e)}") from e
                for ev in resp.get("events", []):
                    msg = ev.get("message", "")
                    found.update(rid for rid in wanted if rid in msg)
                nxt = resp.get("nextForwardToken")
                if not nxt or nxt == token or not resp.get("events"):
                    break
                token = nxt
        return found


def _rejected_indexes(info: Mapping[str, Any], n: int) -> set[int]:
    out: set[int] = set()
    if "tooNewLogEventStartIndex" in info:
        out.update(range(int(info["tooNewLogEventStartIndex"]), n))
    for key in ("tooOldLogEventEndIndex", "expiredLogEventEndIndex"):
        if key in info:
            out.update(range(0, int(info[key]) + 1))
    return out
