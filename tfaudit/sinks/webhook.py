"""webhook: POST each record (or one batch per run) as JSON to a URL, signed with HMAC-SHA256.

Headers:
    X-Tfaudit-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<body>" with the secret>
    Idempotency-Key: <record id>   (batch mode: "batch-" + SHA-256 of the record ids, first 32 hex)
The secret comes from the environment variable named by `secret_env`. `t` is the time of
each attempt, so a receiver can reject requests older than a few minutes and remember
keys seen within that window to reject replays; re-delivery reuses the Idempotency-Key so
the receiver can drop duplicates.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Mapping, Sequence
from functools import partial
from typing import Any, ClassVar

from tfaudit.redact import Redactor
from tfaudit.sinks._http import Connection, check_url, post, send_units
from tfaudit.sinks._settings import Err, env_name, opt_bool, opt_str, req_str, secret_from_env
from tfaudit.sinks.base import Batch, DeliveryConfig, Item, Severity, SinkSpec, encode

SIGNATURE_HEADER = "X-Tfaudit-Signature"
MODES = ("record", "batch")


def signature_header(secret: bytes, body: bytes, timestamp: int) -> str:
    mac = hmac.new(secret, str(timestamp).encode("ascii") + b"." + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={mac}"


def batch_key(items: Sequence[Item]) -> str:
    return "batch-" + hashlib.sha256(",".join(sorted(it.id for it in items)).encode()).hexdigest()[:32]


class WebhookSink:
    kind: ClassVar[str] = "webhook"
    keys: ClassVar[frozenset[str]] = frozenset({"url", "secret_env", "mode", "unsafe_allow_http"})
    takes_format: ClassVar[bool] = True
    network: ClassVar[bool] = True
    default_types: ClassVar[frozenset[str] | None] = None
    default_min_severity: ClassVar[Severity] = Severity.INFO

    def __init__(self, spec: SinkSpec, secret: bytes, max_attempts: int) -> None:
        self.spec = spec
        self.url: str = spec.settings["url"]
        self.mode: str = spec.settings.get("mode", "record")
        self.secret = secret
        self.max_attempts = max_attempts
        self.connection = Connection()  # kept alive for the whole batch

    @classmethod
    def parse_settings(cls, err: Err, body: Mapping[str, Any], ctx: Any) -> dict[str, Any]:
        url = req_str(err, body, "url")
        allow_http = opt_bool(err, body, "unsafe_allow_http", False)
        problem = check_url(url, allow_http=allow_http)
        if problem:
            raise err(f"url {problem}")
        mode = opt_str(err, body, "mode", "record") or "record"
        if mode not in MODES:
            raise err(f'mode must be "record" (one POST per record) or "batch" (one per run), not {mode!r}')
        return {"url": url, "secret_env": env_name(err, body, "secret_env"), "mode": mode,
                "unsafe_allow_http": allow_http}

    @classmethod
    def create(cls, spec: SinkSpec, env: Mapping[str, str], *, redactor: Redactor,
               delivery: DeliveryConfig) -> WebhookSink:
        secret = secret_from_env(env, spec.settings["secret_env"], redactor, what="webhook secret",
                                 hint="the HMAC secret shared with the receiver")
        return cls(spec, secret.encode("utf-8"), delivery.max_attempts)

    def _post(self, body: bytes, key: str, batch: Batch, extra: Mapping[str, str]) -> None:
        def headers() -> dict[str, str]:
            return {SIGNATURE_HEADER: signature_header(self.secret, body, int(time.time())),
                    "Idempotency-Key": key, **extra}

        post(self.url, body, headers, timeout=self.spec.timeout_seconds, max_attempts=self.max_attempts,
             deadline=batch.deadline, connection=self.connection)

    def send(self, batch: Batch) -> None:
        if self.mode == "batch":
            groups: dict[str, list[Item]] = {}
            for it in batch.items:
                groups.setdefault(it.run_id, []).append(it)
            units = list(groups.values())
        else:
            units = [[it] for it in batch.items]
        cloudevents = self.spec.format == "cloudevents"
        sends: list[tuple[Sequence[Item], Any]] = []
        for unit in units:
            if self.mode == "batch":
                events = b",".join(encode(it, self.spec.format) for it in unit)
                # CloudEvents' HTTP binding: a batch is a bare JSON array with its own media type
                body = b"[" + events + b"]" if cloudevents else b'{"records":[' + events + b"]}"
                key, extra = batch_key(unit), {"X-Tfaudit-Run-Id": unit[0].run_id}
                if cloudevents:
                    extra["Content-Type"] = "application/cloudevents-batch+json; charset=utf-8"
            else:
                body, key = encode(unit[0], self.spec.format), unit[0].id
                extra = {"X-Tfaudit-Record-Type": unit[0].type}
                if cloudevents:
                    extra["Content-Type"] = "application/cloudevents+json; charset=utf-8"
            sends.append((unit, partial(self._post, body, key, batch, extra)))
        try:
            send_units(batch, sends, "POST")
        finally:
            self.connection.close()

    def confirm(self, items: Sequence[Item]) -> set[str]:
        return set()  # re-sent with the same Idempotency-Key: the receiver drops duplicates
