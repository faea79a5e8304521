"""pagerduty: alerts as PagerDuty Events API v2 `trigger` events, one per run.

`dedup_key` is `tfaudit-<run id>`, so re-delivery and several alerts of one run update a
single incident. The routing key comes from the variable named by `routing_key_env`; the
endpoint defaults to https://events.pagerduty.com/v2/enqueue and can be changed with `url`.
Only alerts by default, as for Slack.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from functools import partial
from typing import Any, ClassVar

from tfaudit.redact import Redactor
from tfaudit.schema import RecordType
from tfaudit.sinks._alerts import RunAlert, build_alert, group_by_run
from tfaudit.sinks._http import check_url, post, send_units
from tfaudit.sinks._settings import Err, env_name, opt_bool, opt_str, secret_from_env
from tfaudit.sinks.base import Batch, DeliveryConfig, Item, Severity, SinkSpec

DEFAULT_URL = "https://events.pagerduty.com/v2/enqueue"
_PD_SEVERITY = {Severity.CRITICAL: "critical", Severity.HIGH: "error", Severity.MEDIUM: "warning",
                Severity.LOW: "info", Severity.INFO: "info"}


def pagerduty_event(alert: RunAlert, routing_key: str, source: str | None) -> dict[str, Any]:
    event: dict[str, Any] = {
        "routing_key": routing_key,
        "event_action": "trigger",
        "dedup_key": f"tfaudit-{alert.run_id}",
        "payload": {
            "summary": f"{alert.title}: {alert.counts_text()}"[:1024],
            "source": (source or alert.hostname or alert.working_dir or "tfaudit")[:255],
            "severity": _PD_SEVERITY[alert.severity],
            "timestamp": alert.time,
            "component": alert.workspace,
            "group": alert.working_dir,
            "class": f"terraform {alert.command}",
            "custom_details": {
                "run_id": alert.run_id, "actor": alert.actor, "workspace": alert.workspace,
                "command": alert.command, "outcome": alert.status, "counts": alert.counts,
                "actions": alert.actions,
                "resources": [{"address": r.address, "action": r.action, "status": r.status,
                               **({"error": r.error} if r.error else {})} for r in alert.resources],
                "more_resources": alert.more_resources, "record_ids": alert.record_ids,
            },
        },
        "client": "tfaudit",
    }
    if not alert.time:
        del event["payload"]["timestamp"]
    return event


class PagerDutySink:
    kind: ClassVar[str] = "pagerduty"
    keys: ClassVar[frozenset[str]] = frozenset({"routing_key_env", "url", "source", "unsafe_allow_http"})
    takes_format: ClassVar[bool] = False
    network: ClassVar[bool] = True
    default_types: ClassVar[frozenset[str] | None] = frozenset({RecordType.RESOURCE_CHANGED, RecordType.RUN_FINISHED})
    default_min_severity: ClassVar[Severity] = Severity.MEDIUM

    def __init__(self, spec: SinkSpec, routing_key: str, max_attempts: int) -> None:
        self.spec = spec
        self.url: str = spec.settings.get("url", DEFAULT_URL)
        self.routing_key = routing_key
        self.max_attempts = max_attempts

    @classmethod
    def parse_settings(cls, err: Err, body: Mapping[str, Any], ctx: Any) -> dict[str, Any]:
        url = opt_str(err, body, "url", DEFAULT_URL) or DEFAULT_URL
        allow_http = opt_bool(err, body, "unsafe_allow_http", False)
        problem = check_url(url, allow_http=allow_http)
        if problem:
            raise err(f"url {problem}")
        out: dict[str, Any] = {"routing_key_env": env_name(err, body, "routing_key_env"), "url": url,
                               "unsafe_allow_http": allow_http}
        source = opt_str(err, body, "source")
        if source:
            out["source"] = source
        return out

    @classmethod
    def create(cls, spec: SinkSpec, env: Mapping[str, str], *, redactor: Redactor,
               delivery: DeliveryConfig) -> PagerDutySink:
        key = secret_from_env(env, spec.settings["routing_key_env"], redactor, what="PagerDuty routing key",
                              hint="the integration's routing key")
        return cls(spec, key, delivery.max_attempts)

    def send(self, batch: Batch) -> None:
        units = []
        for run_id, items in group_by_run(batch.items).items():
            alert = build_alert(run_id, items, batch.run_items(run_id, unfiltered=True))
            event = pagerduty_event(alert, self.routing_key, self.spec.settings.get("source"))
            body = json.dumps(event, ensure_ascii=False).encode("utf-8")
            units.append((items, partial(post, self.url, body, {}, timeout=self.spec.timeout_seconds,
                                         max_attempts=self.max_attempts, deadline=batch.deadline)))
        send_units(batch, units, "PagerDuty Events API")

    def confirm(self, items: Sequence[Item]) -> set[str]:
        return set()  # dedup_key per run: a repeated trigger updates the same incident
