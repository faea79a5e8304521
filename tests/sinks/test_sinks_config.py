"""Sink and delivery config, filters and severities, S3 keys, CloudWatch batching: no servers."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from sinks_support import run_records
from tfaudit.config import parse_config
from tfaudit.errors import ConfigError
from tfaudit.sinks import SINK_KINDS, OnFailure, Severity, backend, record_severity
from tfaudit.sinks.base import Item
from tfaudit.sinks.cloudwatch import (
    EVENT_OVERHEAD,
    MAX_BATCH_BYTES,
    MAX_BATCH_EVENTS,
    MAX_EVENT_BYTES,
    event_time_ms,
    message_for,
    plan_batches,
    stream_name,
)
from tfaudit.sinks.s3 import object_key
from tfaudit.sinks.webhook import signature_header

ROOT = Path(__file__).resolve().parents[2]

ISSUE_EXAMPLE = '''
sink "s3" "archive" {
  bucket       = "audit-trail"
  prefix       = "terraform"
  sse          = "aws:kms"
  kms_key_id   = "alias/audit"
  object_lock  = { mode = "COMPLIANCE", days = 365 }
}
sink "cloudwatch" "ops" {
  log_group      = "/tfaudit/prod"
  log_stream     = "{workspace}"
  create         = true
  retention_days = 400
}
sink "webhook" "siem" {
  url        = "https://siem.example.com/ingest"
  secret_env = "TFAUDIT_WEBHOOK_SECRET"
  types      = ["resource.changed", "run.finished"]
}
sink "slack" "alerts" {
  url_env = "SLACK_WEBHOOK_URL"
}
sink "pagerduty" "oncall" {
  routing_key_env = "PD_ROUTING_KEY"
}
sink "file" "mirror" {
  path = "mirror/audit.jsonl"
}
sink "stdout" "ci" {
  min_severity = "high"
}
delivery {
  on_failure = "warn"
}
'''


def _cfg(tmp_path: Path, text: str):  # type: ignore[no-untyped-def]
    p = tmp_path / ".tfaudit.hcl"
    p.write_text(text)
    return parse_config(p)


def test_the_issue_example_parses_with_every_kind(tmp_path: Path) -> None:
    cfg = _cfg(tmp_path, ISSUE_EXAMPLE)
    specs = {s.id: s for s in cfg.section("sink")}
    assert set(specs) == {"s3.archive", "cloudwatch.ops", "webhook.siem", "slack.alerts", "pagerduty.oncall",
                          "file.mirror", "stdout.ci"}
    assert {s.kind for s in specs.values()} == set(SINK_KINDS)
    s3 = specs["s3.archive"].settings
    assert s3["sse"] == "aws:kms" and s3["kms_key_id"] == "alias/audit"
    assert s3["object_lock"] == {"mode": "COMPLIANCE", "days": 365}
    assert specs["cloudwatch.ops"].settings["retention_days"] == 400
    assert specs["webhook.siem"].filter.types == {"resource.changed", "run.finished"}
    # alert sinks default to alerts only
    assert specs["slack.alerts"].filter.min_severity is Severity.MEDIUM
    assert specs["pagerduty.oncall"].settings["url"] == "https://events.pagerduty.com/v2/enqueue"
    assert specs["file.mirror"].settings["path"] == str(tmp_path / "mirror" / "audit.jsonl")
    assert specs["stdout.ci"].filter.min_severity is Severity.HIGH
    assert cfg.section("delivery").on_failure is OnFailure.WARN


@pytest.mark.parametrize(("body", "message"), [
    ('sink "ftp" "x" {}', "unknown sink kind 'ftp'"),
    ('sink "s3" "a" { prefix = "x" }', "bucket is required"),
    ('sink "s3" "a" {\n bucket = "b-b-b"\n colour = "red"\n}', "unknown key 'colour'"),
    ('sink "s3" "a" {\n bucket = "b-b-b"\n sse = "rot13"\n}', "sse must be one of"),
    ('sink "s3" "a" {\n bucket = "b-b-b"\n kms_key_id = "alias/k"\n}', 'kms_key_id needs sse = "aws:kms"'),
    ('sink "s3" "a" {\n bucket = "b-b-b"\n object_lock = { mode = "FOREVER", days = 1 }\n}', "object_lock.mode"),
    ('sink "s3" "a" {\n bucket = "b-b-b"\n object_lock = { mode = "COMPLIANCE", days = 0 }\n}', "object_lock.days"),
    ('sink "s3" "a" {\n bucket = "B_ad"\n}', "not a valid S3 bucket name"),
    ('sink "s3" "a" {\n bucket = "b-b-b"\n prefix = "x/../y"\n}', "'..'"),
    ('sink "cloudwatch" "c" {\n log_group = "/g"\n retention_days = 400\n}', "set create = true"),
    ('sink "cloudwatch" "c" {\n log_group = "/g"\n create = true\n retention_days = 42\n}', "retention_days must be one of"),
    ('sink "cloudwatch" "c" {\n log_group = "/g"\n log_stream = "{user}"\n}', "unknown placeholder {user}"),
    ('sink "webhook" "w" {\n url = "http://siem.example.com/x"\n secret_env = "S"\n}', "unsafe_allow_http"),
    ('sink "webhook" "w" {\n url = "https://siem.example.com/x"\n secret_env = "not a var"\n}', "must name an environment variable"),
    ('sink "webhook" "w" {\n url = "https://siem.example.com/x"\n}', "secret_env is required"),
    ('sink "webhook" "w" {\n url = "https://h/x"\n secret_env = "S"\n mode = "stream"\n}', 'mode must be "record"'),
    ('sink "webhook" "w" {\n url = "https://h/x"\n secret_env = "S"\n format = "xml"\n}', "unknown format 'xml'"),
    ('sink "webhook" "w" {\n url = "https://h/x"\n secret_env = "S"\n types = ["run.exploded"]\n}', "unknown record type"),
    ('sink "webhook" "w" {\n url = "https://h/x"\n secret_env = "S"\n min_severity = "urgent"\n}', "min_severity must be one of"),
    ('sink "webhook" "w" {\n url = "https://h/x"\n secret_env = "S"\n timeout_seconds = 0\n}', "timeout_seconds must be between"),
    ('sink "slack" "s" {\n url = "https://hooks.slack.com/x"\n}', "unknown key 'url'"),
    ('sink "slack" "s" {\n url_env = "U"\n format = "native"\n}', "unknown key 'format'"),
    ('sink "pagerduty" "p" {\n routing_key_env = "K"\n url = "ftp://x"\n}', "must be an http(s) URL"),
    ('sink "file" "f" {}', "path is required"),
    ('sink "stdout" "a" {}\nsink "stdout" "a" {}', "declared twice"),
    ('sink "stdout" "bad name" {}', "may use only letters"),
    ('sink "stdout" {}', "needs 2 label(s)"),
    ('delivery {\n on_failure = "panic"\n}', 'on_failure must be "warn" or "fail"'),
    ('delivery {\n max_attempts = 0\n}', "max_attempts must be a whole number from 1 to 10"),
])
def test_a_bad_setting_is_a_config_error_naming_the_block(tmp_path: Path, body: str, message: str) -> None:
    with pytest.raises(ConfigError) as err:
        _cfg(tmp_path, body)
    text = str(err.value)
    assert message in text, text
    assert str(tmp_path / ".tfaudit.hcl") in text
    if body.startswith("sink") and '"ftp"' not in body and 'sink "stdout" {}' not in body:
        kind, name = re.findall(r'"([^"]*)"', body)[:2]
        assert f'block sink "{kind}" "{name}"' in text


def test_config_validate_reports_a_bad_sink_with_exit_64(tmp_path: Path) -> None:
    (tmp_path / ".tfaudit.hcl").write_text('sink "webhook" "siem" {\n url = "http://siem.example.com/x"\n secret_env = "S"\n}\n')
    res = subprocess.run([sys.executable, "-m", "tfaudit", "config", "validate"], cwd=tmp_path,
                         capture_output=True, text=True, timeout=60)
    assert res.returncode == 64
    assert 'block sink "webhook" "siem": url uses plain http to a remote host' in res.stderr
    assert "Traceback" not in res.stderr


def test_loopback_http_is_allowed_for_local_agents(tmp_path: Path) -> None:
    cfg = _cfg(tmp_path, 'sink "webhook" "w" {\n url = "http://127.0.0.1:9/x"\n secret_env = "S"\n}')
    assert cfg.section("sink")[0].settings["url"] == "http://127.0.0.1:9/x"


def test_parsing_sink_config_does_not_import_boto3(tmp_path: Path) -> None:
    (tmp_path / ".tfaudit.hcl").write_text(ISSUE_EXAMPLE)
    code = ("import sys; from pathlib import Path; from tfaudit.config import parse_config; "
            f"parse_config(Path({str(tmp_path / '.tfaudit.hcl')!r})); "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('boto3', 'botocore', 'tenacity')))")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == "[]"


# --- severities and filters ----------------------------------------------------------------
def _items(recs: list[dict]) -> list[Item]:  # type: ignore[type-arg]
    return [Item({**r, "chain": {"seq": n, "prev": None}}, b"", 0) for n, r in enumerate(recs, 1)]


def test_record_severity_and_the_default_alert_filter(tmp_path: Path) -> None:
    recs = run_records([("aws_s3_bucket.a", "create", "succeeded"), ("aws_iam_role.r", "delete", "succeeded"),
                        ("aws_instance.i", "replace", "succeeded"), ("aws_x.y", "update", "failed")])
    sev = {(r["type"], (r.get("resource") or {}).get("address")): record_severity(r) for r in recs}
    assert sev[("run.started", None)] is Severity.INFO
    assert sev[("resource.changed", "aws_s3_bucket.a")] is Severity.LOW
    assert sev[("resource.changed", "aws_iam_role.r")] is Severity.MEDIUM
    assert sev[("resource.changed", "aws_instance.i")] is Severity.MEDIUM
    assert sev[("resource.changed", "aws_x.y")] is Severity.HIGH
    assert sev[("run.finished", None)] is Severity.HIGH  # partial
    ok = run_records([("aws_s3_bucket.a", "create", "succeeded")])
    assert record_severity(ok[-1]) is Severity.INFO
    # a finding raises a record to its severity
    assert record_severity({**ok[1], "findings": [{"rule": "r", "severity": "critical", "message": "m"}]}) \
        is Severity.CRITICAL

    cfg = _cfg(tmp_path, 'sink "slack" "s" { url_env = "U" }')
    alerts = cfg.section("sink")[0].filter
    picked = [(r["type"], (r.get("resource") or {}).get("address")) for r in recs if alerts.matches(r)]
    assert picked == [("resource.changed", "aws_iam_role.r"), ("resource.changed", "aws_instance.i"),
                      ("resource.changed", "aws_x.y"), ("run.finished", None)]
    assert not [r for r in ok if alerts.matches(r)]  # a clean create-only run raises no alert
    # a resource finding from a rule with effect = "alert" routes that record to the alert sinks
    created = ok[1]
    flagged = {**created, "resource": {**created["resource"], "findings": [
        {"rule": "tagging", "severity": "low", "message": "untagged bucket", "effect": "alert"}]}}
    assert alerts.matches(flagged) and record_severity(flagged) is Severity.HIGH
    warned = {**created, "resource": {**created["resource"], "findings": [
        {"rule": "tagging", "severity": "low", "message": "untagged bucket", "effect": "warn"}]}}
    assert not alerts.matches(warned)


# --- S3 keys ---------------------------------------------------------------------------------------
def test_s3_keys_are_partitioned_and_cannot_escape_the_prefix() -> None:
    run = "0123456789abcdef0123456789abcdef"
    assert object_key("terraform", "2026-11-26T02:21:35.617762Z", "prod", run) == \
        f"terraform/2026/11/26/prod/{run}.jsonl"
    assert object_key("org/env=prod", "2026-01-02T00:00:00Z", "default", run) == \
        f"org/env=prod/2026/01/02/default/{run}.jsonl"
    for evil in ("../../etc", "..", ".", "a/../../b", "/abs", "x\\..\\y", "a b\nc"):
        key = object_key("terraform", "2026-01-02T00:00:00Z", evil, run)
        parts = key.split("/")
        assert parts[:4] == ["terraform", "2026", "01", "02"] and len(parts) == 6, key
        assert parts[4] not in (".", "..") and "/" not in parts[4] and parts[4], key
    assert object_key("terraform", "garbage", "w", "../" + run) == f"terraform/unknown-date/w/.._{run}.jsonl"


# --- CloudWatch batching ------------------------------------------------------------------------
def _ev(n: int, size: int) -> tuple[int, str, Item]:
    rec = {"id": f"{n:032x}", "chain": {"seq": n}, "type": "run.started", "run": {"id": "r"}}
    return (n, "x" * size, Item(rec, b"", 0))


def test_cloudwatch_batches_keep_the_count_and_byte_limits() -> None:
    many = [_ev(i, 10) for i in range(MAX_BATCH_EVENTS + 1)]
    batches = list(plan_batches(many))
    assert [len(b) for b in batches] == [MAX_BATCH_EVENTS, 1]
    big = [_ev(i, 200_000) for i in range(12)]  # 2.4 MB in total
    batches = list(plan_batches(big))
    assert len(batches) == 3
    for b in batches:
        assert sum(len(m) + EVENT_OVERHEAD for _, m, _ in b) <= MAX_BATCH_BYTES
    assert [ev[0] for b in batches for ev in b] == list(range(12))  # order kept


def test_cloudwatch_oversize_record_becomes_a_stub_and_old_records_get_the_delivery_time() -> None:
    recs = run_records([("aws_s3_bucket.a", "create", "succeeded")], pad=300_000)
    line = json.dumps(recs[1]).encode()
    item = Item({**recs[1], "chain": {"seq": 2, "prev": None}}, line, 0)
    msg = message_for(item, "native")
    assert len(msg) < MAX_EVENT_BYTES
    stub = json.loads(msg)
    assert stub["tfaudit_stub"] is True and stub["id"] == item.id and stub["seq"] == 2 and stub["bytes"] == len(line)
    now = 1_800_000_000_000
    assert event_time_ms({"time": "2027-01-15T08:00:00Z"}, now) == now  # far in the past relative to now: clamped
    recent = {"time": "2027-01-15T08:00:00.250Z"}
    ts = int(__import__("datetime").datetime.fromisoformat("2027-01-15T08:00:00.250+00:00").timestamp() * 1000)
    assert event_time_ms(recent, ts + 60_000) == ts
    assert stream_name("{workspace}-{date}", {"run": {"workspace": "prod:eu"}, "time": "2027-01-15T08:00:00Z"}) == \
        "prod_eu-2027-01-15"


def test_webhook_signature_header_format() -> None:
    assert signature_header(b"k", b'{"a":1}', 1700000000) == \
        "t=1700000000,v1=" + __import__("hmac").new(b"k", b'1700000000.{"a":1}', "sha256").hexdigest()


def test_every_registered_kind_has_a_backend_with_the_sink_shape() -> None:
    for kind in SINK_KINDS:
        cls = backend(kind)
        assert cls.kind == kind
        for attr in ("parse_settings", "create", "send", "confirm", "keys", "takes_format", "network",
                     "default_types", "default_min_severity"):
            assert hasattr(cls, attr), (kind, attr)
