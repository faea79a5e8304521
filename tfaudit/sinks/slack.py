"""slack: alerts as readable messages through an incoming webhook.

Only alerts by default (`min_severity = "medium"` over run.finished and resource.changed):
failed, partial and interrupted runs, resources that failed, deletes and replaces. One
message per run, naming the actor, workspace, command, counts and the resources
concerned. The webhook URL is a secret: it comes from the variable named by `url_env`
and never appears in logs or errors.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from functools import partial
from typing import Any, ClassVar

from tfaudit.errors import SinkError
from tfaudit.redact import Redactor
from tfaudit.schema import RecordType
from tfaudit.sinks._alerts import RunAlert, build_alert, group_by_run
from tfaudit.sinks._http import check_url, post, send_units
from tfaudit.sinks._settings import Err, env_name, opt_bool, secret_from_env
from tfaudit.sinks.base import Batch, DeliveryConfig, Item, Severity, SinkSpec

_ICON = {Severity.CRITICAL: ":rotating_light:", Severity.HIGH: ":x:", Severity.MEDIUM: ":warning:",
         Severity.LOW: ":information_source:", Severity.INFO: ":white_check_mark:"}


def _esc(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def slack_message(alert: RunAlert) -> dict[str, Any]:
    lines = [f"• `{_esc(r.address)}` {_esc(r.action)}: {_esc(r.status)}" + (f" ({_esc(r.error)})" if r.error else "")
             for r in alert.resources]
    if alert.more_resources:
        lines.append(f"… and {alert.more_resources} more")
    title = f"{_ICON[alert.severity]} {alert.title}"
    blocks: list[dict[str, Any]] = [
        {"type": "section", "text": {"type": "mrkdwn", "text": f"*{_esc(title)}*"}},
        {"type": "section", "fields": [
            {"type": "mrkdwn", "text": f"*Actor*\n{_esc(alert.actor)}"},
            {"type": "mrkdwn", "text": f"*Workspace*\n{_esc(alert.workspace)}"},
            {"type": "mrkdwn", "text": f"*Outcome*\n{_esc(alert.status)}"},
            {"type": "mrkdwn", "text": f"*Counts*\n{_esc(alert.counts_text())}"},
        ]},
    ]
    if lines:
        text = "\n".join(lines)
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": text[:2900]}})
    blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": _esc(
        f"run {alert.run_id} · {alert.working_dir} · {alert.hostname or ''} · {alert.time}")[:2000]}]})
    return {"text": f"{alert.title}: {alert.counts_text()}", "blocks": blocks}


class SlackSink:
    kind: ClassVar[str] = "slack"
    keys: ClassVar[frozenset[str]] = frozenset({"url_env", "unsafe_allow_http"})
    takes_format: ClassVar[bool] = False
    network: ClassVar[bool] = True
    default_types: ClassVar[frozenset[str] | None] = frozenset({RecordType.RESOURCE_CHANGED, RecordType.RUN_FINISHED})
    default_min_severity: ClassVar[Severity] = Severity.MEDIUM

    def __init__(self, spec: SinkSpec, url: str, max_attempts: int) -> None:
        self.spec = spec
        self.url = url
        self.max_attempts = max_attempts

    @classmethod
    def parse_settings(cls, err: Err, body: Mapping[str, Any], ctx: Any) -> dict[str, Any]:
        return {"url_env": env_name(err, body, "url_env"),
                "unsafe_allow_http": opt_bool(err, body, "unsafe_allow_http", False)}

    @classmethod
    def create(cls, spec: SinkSpec, env: Mapping[str, str], *, redactor: Redactor,
               delivery: DeliveryConfig) -> SlackSink:
        name = spec.settings["url_env"]
        url = secret_from_env(env, name, redactor, what="Slack webhook", hint="the incoming-webhook URL")
        problem = check_url(url, allow_http=bool(spec.settings.get("unsafe_allow_http")))
        if problem:
            raise SinkError(f"the Slack webhook URL in {name} {problem}")
        return cls(spec, url, delivery.max_attempts)

    def send(self, batch: Batch) -> None:
        units = []
        for run_id, items in group_by_run(batch.items).items():
            alert = build_alert(run_id, items, batch.run_items(run_id, unfiltered=True))
            body = json.dumps(slack_message(alert), ensure_ascii=False).encode("utf-8")
            units.append((items, partial(post, self.url, body, {}, timeout=self.spec.timeout_seconds,
                                         max_attempts=self.max_attempts, deadline=batch.deadline)))
        send_units(batch, units, "Slack webhook")

    def confirm(self, items: Sequence[Item]) -> set[str]:
        return set()  # Slack has no idempotency key: after a crash mid-send an alert may repeat
