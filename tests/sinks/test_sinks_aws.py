"""S3 and CloudWatch Logs sinks, and the STS caller identity, against the session's moto server."""

from __future__ import annotations

import base64
import hashlib
import json
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from conftest import CliResult, MotoServer
from sinks_support import append_run, new_signer
from tfaudit import _aws
from tfaudit.config import parse_config
from tfaudit.trail.ledger import Ledger
from tfaudit.sinks.delivery import deliver, enroll, scan, status
from tfaudit.sinks.outbox import Outbox

pytestmark = [pytest.mark.slow]

CHANGES = [("aws_s3_bucket.logs", "create", "succeeded"), ("aws_iam_role.old", "delete", "succeeded"),
           ("aws_security_group.db", "update", "failed")]


def _name(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


class Setup:
    def __init__(self, tmp: Path, moto: MotoServer) -> None:
        self.tmp, self.moto = tmp, moto
        self.signer, self.pub = new_signer(tmp)
        self.ledger = tmp / ".tfaudit" / "ledger.jsonl"
        self.env = moto.aws_env()

    def config(self, text: str, delivery: str = "deadline_seconds = 20") -> Any:
        p = self.tmp / ".tfaudit.hcl"
        p.write_text(text + f"\ndelivery {{\n{delivery}\n}}\n")
        cfg = parse_config(p)
        enroll(self.ledger, cfg.section("sink"))
        return cfg

    def deliver(self, cfg: Any, env: dict[str, str] | None = None) -> Any:
        return deliver(self.ledger, cfg.section("sink"), cfg.section("delivery"), env or self.env)


@pytest.fixture
def aws(tmp_path: Path, moto_server: MotoServer) -> Setup:
    return Setup(tmp_path, moto_server)


def _verify(run_tfaudit: Callable[..., CliResult], path: Path, pub: Path) -> CliResult:
    return run_tfaudit("verify", str(path), "--public-key", str(pub))


# --- S3 --------------------------------------------------------------------------------------------
def test_s3_one_object_per_run_encrypted_locked_checksummed_and_verifiable(
        aws: Setup, run_tfaudit: Callable[..., CliResult]) -> None:
    s3 = aws.moto.client("s3")
    bucket = _name("audit-trail")
    s3.create_bucket(Bucket=bucket, ObjectLockEnabledForBucket=True)
    cfg = aws.config(f'''
sink "s3" "archive" {{
  bucket      = "{bucket}"
  prefix      = "terraform/prod"
  sse         = "aws:kms"
  kms_key_id  = "alias/audit"
  object_lock = {{ mode = "COMPLIANCE", days = 30 }}
}}''')
    run1 = append_run(aws.ledger, aws.signer, CHANGES, workspace="prod")
    run2 = append_run(aws.ledger, aws.signer, CHANGES[:1], workspace="../../escape")
    report = aws.deliver(cfg)
    assert report.pending == 0 and report.delivered == len(run1) + len(run2)

    keys = sorted(o["Key"] for o in s3.list_objects_v2(Bucket=bucket)["Contents"])
    day = run1[0].record["run"]["started_at"][:10].replace("-", "/")
    assert keys == sorted([f"terraform/prod/{day}/prod/{run1[0].record['run']['id']}.jsonl",
                           f"terraform/prod/{day}/.._.._escape/{run2[0].record['run']['id']}.jsonl"])
    (key1,) = [k for k in keys if k.endswith(f"/prod/{run1[0].record['run']['id']}.jsonl")]
    body = s3.get_object(Bucket=bucket, Key=key1)["Body"].read()
    assert body == b"".join(a.line + b"\n" for a in run1)  # the exact ledger lines, in order
    head = s3.head_object(Bucket=bucket, Key=key1, ChecksumMode="ENABLED")
    assert head["ServerSideEncryption"] == "aws:kms" and head["SSEKMSKeyId"] == "alias/audit"
    assert head["ChecksumSHA256"] == base64.b64encode(hashlib.sha256(body).digest()).decode()
    assert head["ObjectLockMode"] == "COMPLIANCE"
    retain = head["ObjectLockRetainUntilDate"].timestamp()
    assert 29 * 86400 < retain - time.time() < 31 * 86400
    assert head["Metadata"] == {"tfaudit-records": str(len(run1)), "tfaudit-first-seq": "1",
                                "tfaudit-last-seq": str(len(run1)), "tfaudit-format": "native"}
    with pytest.raises(Exception, match="AccessDenied"):  # locked: the trail cannot be deleted
        s3.delete_object(Bucket=bucket, Key=key1, VersionId=head["VersionId"])

    # the objects put back together in seq order are the ledger, and verify
    lines = []
    for key in keys:
        lines += s3.get_object(Bucket=bucket, Key=key)["Body"].read().splitlines()
    lines.sort(key=lambda ln: json.loads(ln)["chain"]["seq"])
    rebuilt = aws.tmp / "from-s3.jsonl"
    rebuilt.write_bytes(b"".join(ln + b"\n" for ln in lines))
    assert rebuilt.read_bytes() == aws.ledger.read_bytes()
    res = _verify(run_tfaudit, rebuilt, aws.pub)
    assert res.returncode == 0 and "OK: 8 records in 2 runs verified" in res.stdout, res.output


def test_s3_redelivery_rewrites_the_same_key_with_the_whole_run(aws: Setup) -> None:
    s3 = aws.moto.client("s3")
    bucket = _name("audit-trail")
    s3.create_bucket(Bucket=bucket)
    cfg = aws.config(f'sink "s3" "archive" {{\n  bucket = "{bucket}"\n}}')
    from sinks_support import run_records

    recs = run_records(CHANGES)
    # the intent record is written and delivered first (as when a flush runs during an apply) ...
    Ledger(aws.ledger).append(recs[:1], aws.signer)
    assert aws.deliver(cfg).delivered == 1
    # ... then the rest of the run arrives
    Ledger(aws.ledger).append(recs[1:], aws.signer)
    assert aws.deliver(cfg).delivered == len(recs) - 1
    (obj,) = s3.list_objects_v2(Bucket=bucket)["Contents"]
    assert obj["Key"].startswith("tfaudit/") and obj["Key"].endswith(f"{recs[0]['run']['id']}.jsonl")
    body = s3.get_object(Bucket=bucket, Key=obj["Key"])["Body"].read()
    assert body == aws.ledger.read_bytes()  # one object, every record of the run, no duplicates


def test_s3_bucket_missing_is_pending_with_the_aws_error(aws: Setup) -> None:
    cfg = aws.config(f'sink "s3" "archive" {{\n  bucket = "{_name("no-such-bucket")}"\n}}')
    append_run(aws.ledger, aws.signer, CHANGES[:1])
    report = aws.deliver(cfg)
    assert report.pending == 3 and "NoSuchBucket" in report.sinks[0].error


# --- CloudWatch Logs --------------------------------------------------------------------------
def test_cloudwatch_creates_group_with_retention_and_ships_every_record_in_order(
        aws: Setup, run_tfaudit: Callable[..., CliResult]) -> None:
    logs = aws.moto.client("logs")
    group = "/tfaudit/" + _name("prod")
    cfg = aws.config(f'''
sink "cloudwatch" "ops" {{
  log_group      = "{group}"
  log_stream     = "{{workspace}}"
  create         = true
  retention_days = 400
}}''')
    a = append_run(aws.ledger, aws.signer, CHANGES, workspace="prod")
    b = append_run(aws.ledger, aws.signer, CHANGES[:1], workspace="staging")
    report = aws.deliver(cfg)
    assert report.pending == 0 and report.delivered == len(a) + len(b)
    (g,) = logs.describe_log_groups(logGroupNamePrefix=group)["logGroups"]
    assert g["retentionInDays"] == 400
    assert {s["logStreamName"] for s in logs.describe_log_streams(logGroupName=group)["logStreams"]} == \
        {"prod", "staging"}
    events = logs.get_log_events(logGroupName=group, logStreamName="prod", startFromHead=True)["events"]
    assert [e["message"].encode() for e in events] == [x.line for x in a]
    assert [e["timestamp"] for e in events] == sorted(e["timestamp"] for e in events)

    # the events from both streams, in seq order, are the ledger and verify
    lines = [e["message"].encode() for s in ("prod", "staging")
             for e in logs.get_log_events(logGroupName=group, logStreamName=s, startFromHead=True)["events"]]
    lines.sort(key=lambda ln: json.loads(ln)["chain"]["seq"])
    rebuilt = aws.tmp / "from-cloudwatch.jsonl"
    rebuilt.write_bytes(b"".join(ln + b"\n" for ln in lines))
    res = _verify(run_tfaudit, rebuilt, aws.pub)
    assert res.returncode == 0, res.output


def test_cloudwatch_missing_group_without_create_is_a_clear_pending_error(aws: Setup) -> None:
    cfg = aws.config(f'sink "cloudwatch" "ops" {{\n  log_group = "/tfaudit/{_name("absent")}"\n}}')
    append_run(aws.ledger, aws.signer, CHANGES[:1])
    report = aws.deliver(cfg)
    assert report.pending == 3
    assert "does not exist (create them, or set create = true in the sink block)" in report.sinks[0].error


def test_cloudwatch_splits_large_deliveries_into_calls_within_the_limits(
        aws: Setup, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[int, int]] = []
    real_client = _aws.client

    def counting_client(service: str, *a: Any, **kw: Any) -> Any:
        c = real_client(service, *a, **kw)
        if service == "logs":
            def count(params: dict[str, Any], **_: Any) -> None:
                evs = params["logEvents"]
                calls.append((len(evs), sum(len(e["message"].encode()) + 26 for e in evs)))
            c.meta.events.register("provide-client-params.cloudwatch-logs.PutLogEvents", count)
        return c

    monkeypatch.setattr(_aws, "client", counting_client)
    group = "/tfaudit/" + _name("big")
    logs = aws.moto.client("logs")
    logs.create_log_group(logGroupName=group)
    logs.create_log_stream(logGroupName=group, logStreamName="default")
    cfg = aws.config(f'sink "cloudwatch" "ops" {{\n  log_group = "{group}"\n}}')
    big = append_run(aws.ledger, aws.signer, [(f"aws_s3_bucket.b{i}", "create", "succeeded") for i in range(20)],
                     pad=100_000)
    assert aws.deliver(cfg).pending == 0
    assert len(calls) >= 2 and all(n <= 10_000 and size <= 1_048_576 for n, size in calls), calls
    assert sum(n for n, _ in calls) == len(big)
    got = []
    kw: dict[str, Any] = {"logGroupName": group, "logStreamName": "default", "startFromHead": True}
    while True:
        page = logs.get_log_events(**kw)
        got += page["events"]
        if not page["events"]:
            break
        kw["nextToken"] = page["nextForwardToken"]
    assert [json.loads(e["message"])["chain"]["seq"] for e in got] == [x.seq for x in big]


def test_cloudwatch_after_a_crash_mid_send_reads_back_instead_of_duplicating(aws: Setup) -> None:
    """The state a kill -9 leaves mid-PutLogEvents: rows marked attempting, the events already in the stream."""
    logs = aws.moto.client("logs")
    group = "/tfaudit/" + _name("crash")
    cfg = aws.config(f'sink "cloudwatch" "ops" {{\n  log_group = "{group}"\n  create = true\n}}')
    append_run(aws.ledger, aws.signer, CHANGES)
    items = scan(aws.ledger)
    with Outbox(aws.ledger) as ob:
        ob.attempting("cloudwatch.ops", items)
    logs.create_log_group(logGroupName=group)
    logs.create_log_stream(logGroupName=group, logStreamName="default")
    now = int(time.time() * 1000)
    logs.put_log_events(logGroupName=group, logStreamName="default",
                        logEvents=[{"timestamp": now, "message": it.line.decode()} for it in items[:3]])
    assert status(aws.ledger, cfg.section("sink"))[0].in_doubt == len(items)
    report = aws.deliver(cfg)
    assert report.pending == 0 and report.sinks[0].confirmed == 3 and report.delivered == len(items) - 3
    events = logs.get_log_events(logGroupName=group, logStreamName="default", startFromHead=True)["events"]
    ids = [json.loads(e["message"])["id"] for e in events]
    assert sorted(ids) == sorted(it.id for it in items)  # each once


def test_aws_endpoint_down_is_pending_within_seconds(aws: Setup) -> None:
    cfg = aws.config('sink "s3" "archive" {\n  bucket = "some-bucket"\n}\n'
                     'sink "cloudwatch" "ops" {\n  log_group = "/g"\n}', "max_attempts = 2\ndeadline_seconds = 10")
    append_run(aws.ledger, aws.signer, CHANGES[:1])
    env = {**aws.env, "AWS_ENDPOINT_URL": "http://127.0.0.1:9"}
    t0 = time.monotonic()
    report = aws.deliver(cfg, env)
    assert time.monotonic() - t0 < 8
    assert report.pending == 6
    assert all("Could not connect" in (s.error or "") for s in report.sinks), [s.error for s in report.sinks]


# --- STS caller identity ---------------------------------------------------------------------
def test_cloud_identity_from_sts_and_its_failure_is_noted_quickly(moto_server: MotoServer) -> None:
    from tfaudit.identity.cloud import cloud_identity

    got = cloud_identity(moto_server.aws_env())
    assert got == {"aws": {"account": "123456789012", "arn": "arn:aws:sts::123456789012:user/moto",
                           "user_id": got["aws"]["user_id"], "error": None}}
    assert got["aws"]["user_id"]
    t0 = time.monotonic()
    down = cloud_identity({**moto_server.aws_env(), "AWS_ENDPOINT_URL": "http://127.0.0.1:9"})
    assert time.monotonic() - t0 < 6
    assert down is not None and down["aws"]["account"] is None and "Could not connect" in down["aws"]["error"]


def test_no_credentials_means_no_sts_call_and_no_boto3(tmp_path: Path) -> None:
    code = ("import sys; from tfaudit.identity.cloud import cloud_identity; "
            f"print(cloud_identity({{'HOME': {str(tmp_path)!r}, 'PATH': '/usr/bin'}})); "
            "print(any(m.startswith(('boto3', 'botocore')) for m in sys.modules))")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert res.stdout.split() == ["None", "False"], res.stdout + res.stderr
    (tmp_path / ".aws").mkdir()
    (tmp_path / ".aws" / "credentials").write_text("[default]\naws_access_key_id = AKIAEXAMPLE\n")
    assert _aws.has_credentials({"HOME": str(tmp_path)})
