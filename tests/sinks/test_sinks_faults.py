"""Faults with real terraform (fixtures/quickstart, terraform_data): every sink down during the run,
then up; a kill -9 between the ledger write and delivery; the exit code for on_failure; and no
boto3 import when no AWS sink is configured."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from conftest import CliResult, MotoServer, read_ledger
from sinks_support import Receiver

pytestmark = [pytest.mark.slow, pytest.mark.terraform]

SECRET = "whsec-faults-51f0"


@pytest.fixture
def rx() -> Iterator[dict[str, Receiver]]:
    r = {"hook": Receiver(secret=SECRET.encode()), "slack": Receiver(), "pd": Receiver()}
    yield r
    for x in r.values():
        x.stop()


def _config(work: Path, rx: dict[str, Receiver], tag: str, on_failure: str) -> None:
    (work / ".tfaudit.hcl").write_text(f'''
sink "file" "mirror" {{
  path = "mirror/audit.jsonl"
}}
sink "stdout" "ci" {{
  types = ["run.finished"]
}}
sink "s3" "archive" {{
  bucket = "trail-{tag}"
}}
sink "cloudwatch" "ops" {{
  log_group = "/tfaudit/{tag}"
  create    = true
}}
sink "webhook" "siem" {{
  url        = "{rx['hook'].url}/ingest"
  secret_env = "HOOK_SECRET"
}}
sink "slack" "alerts" {{
  url_env      = "SLACK_URL"
  min_severity = "low"
}}
sink "pagerduty" "oncall" {{
  routing_key_env = "PD_KEY"
  url             = "{rx['pd'].url}/v2/enqueue"
  min_severity    = "low"
}}
delivery {{
  on_failure       = "{on_failure}"
  max_attempts     = 2
  deadline_seconds = 8
}}
''')


def test_every_sink_down_then_up_flush_delivers_each_record_exactly_once(
        tf_workdir: Callable[[str], Path], keypair: tuple[Path, Path], run_tfaudit: Callable[..., CliResult],
        moto_server: MotoServer, rx: dict[str, Receiver]) -> None:
    work = tf_workdir("quickstart")
    tag = uuid.uuid4().hex[:10]
    _config(work, rx, tag, "fail")
    (work / "mirror").write_text("a file where the mirror directory should be")  # the file sink is down
    rx["hook"].stop()  # connection refused
    rx["slack"].mode = "500"
    rx["pd"].mode = "429"
    env = {**moto_server.aws_env(), "AWS_ENDPOINT_URL": "http://127.0.0.1:9",  # AWS endpoint down
           "TFAUDIT_SIGNING_KEY": str(keypair[0]), "HOOK_SECRET": SECRET,
           "SLACK_URL": f"{rx['slack'].url}/services/x", "PD_KEY": "pd-key-faults-0001"}

    t0 = time.monotonic()
    r1 = run_tfaudit("apply", "-auto-approve", cwd=work, env=env)
    took = time.monotonic() - t0
    # terraform applied; the audit trail is in the ledger; delivery failed: exit 4 with on_failure = "fail"
    assert r1.returncode == 4, r1.output
    assert "Apply complete! Resources: 4 added" in r1.stdout
    assert took < 30, took
    warning = [ln for ln in r1.stderr.splitlines() if "record deliveries pending" in ln]
    assert len(warning) == 1 and "run 'tfaudit flush' to retry" in warning[0]
    state = subprocess.run(["terraform", "state", "list"], cwd=work, capture_output=True, text=True,
                           env={**os.environ, **env})
    assert "terraform_data.database" in state.stdout  # the infrastructure changed regardless
    recs = read_ledger(work / ".tfaudit" / "ledger.jsonl")
    ids = [r["id"] for r in recs]
    assert len(recs) == 6
    # stdout never fails: it printed run.finished already
    assert [json.loads(ln)["id"] for ln in r1.stdout.splitlines() if ln.startswith('{"actor"')] == [ids[-1]]

    st = run_tfaudit("status", "--json", cwd=work, env=env)
    assert st.returncode == 0, st.output
    pending = {s["sink"]: s["pending"] for s in json.loads(st.stdout)["sinks"]}
    assert pending == {"file.mirror": 6, "stdout.ci": 0, "s3.archive": 6, "cloudwatch.ops": 6,
                       "webhook.siem": 6, "slack.alerts": 4, "pagerduty.oncall": 4}  # 4 resources: low
    text = run_tfaudit("status", cwd=work, env=env)
    assert "webhook.siem" in text.stdout and "cannot connect" in text.stdout and "32 pending" in text.stdout
    assert "services/x" not in text.stdout + st.stdout  # the Slack URL is a secret

    # everything comes back
    (work / "mirror").unlink()
    rx["hook"].start()
    rx["slack"].mode = rx["pd"].mode = "ok"
    moto_server.client("s3").create_bucket(Bucket=f"trail-{tag}")
    env["AWS_ENDPOINT_URL"] = moto_server.url
    fl = run_tfaudit("flush", cwd=work, env=env)
    assert fl.returncode == 0, fl.output
    assert "flush: 32 delivered, 0 pending" in fl.stdout

    assert [a.headers["Idempotency-Key"] for a in rx["hook"].all() if a.status == 200] == ids
    assert (work / "mirror" / "audit.jsonl").read_bytes() == (work / ".tfaudit" / "ledger.jsonl").read_bytes()
    (obj,) = moto_server.client("s3").list_objects_v2(Bucket=f"trail-{tag}")["Contents"]
    body = moto_server.client("s3").get_object(Bucket=f"trail-{tag}", Key=obj["Key"])["Body"].read()
    assert body == (work / ".tfaudit" / "ledger.jsonl").read_bytes()
    events = moto_server.client("logs").get_log_events(logGroupName=f"/tfaudit/{tag}", logStreamName="default",
                                                       startFromHead=True)["events"]
    assert [json.loads(e["message"])["id"] for e in events] == ids
    assert len(rx["slack"].accepted()) == 1 and len(rx["pd"].accepted()) == 1

    # nothing is sent twice
    seen = {k: len(r.all()) for k, r in rx.items()}
    again = run_tfaudit("flush", cwd=work, env=env)
    assert again.returncode == 0 and "flush: 0 delivered, 0 pending" in again.stdout
    assert {k: len(r.all()) for k, r in rx.items()} == seen

    # on_failure = "warn": the same outage is a warning and exit 0
    _config(work, rx, tag, "warn")
    rx["hook"].stop()
    r2 = run_tfaudit("apply", "-auto-approve", "-var", "release=2", cwd=work, env=env)
    assert r2.returncode == 0, r2.output
    assert "webhook.siem: 6 (POST: cannot connect" in r2.stderr
    rx["hook"].start()
    assert run_tfaudit("flush", "--sink", "siem", cwd=work, env=env).returncode == 0
    ids = [r["id"] for r in read_ledger(work / ".tfaudit" / "ledger.jsonl")]
    assert [a.headers["Idempotency-Key"] for a in rx["hook"].all() if a.status == 200] == ids


def test_kill_9_between_the_ledger_write_and_delivery_then_flush_delivers(
        tf_workdir: Callable[[str], Path], keypair: tuple[Path, Path], base_env: dict[str, str],
        run_tfaudit: Callable[..., CliResult], moto_server: MotoServer, rx: dict[str, Receiver]) -> None:
    work = tf_workdir("quickstart")
    tag = uuid.uuid4().hex[:10]
    moto_server.client("s3").create_bucket(Bucket=f"trail-{tag}")
    _config(work, rx, tag, "warn")
    rx["hook"].mode = "hang"  # the webhook takes the first record and never answers
    env = {**base_env, **moto_server.aws_env(), "TFAUDIT_SIGNING_KEY": str(keypair[0]), "HOOK_SECRET": SECRET,
           "SLACK_URL": f"{rx['slack'].url}/services/x", "PD_KEY": "pd-key-faults-0002"}
    proc = subprocess.Popen([sys.executable, "-m", "tfaudit", "apply", "-auto-approve"], cwd=work, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        assert rx["hook"].request_arrived.wait(120), "delivery never started"
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(30)
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.communicate()
    assert proc.returncode == -signal.SIGKILL
    ledger = work / ".tfaudit" / "ledger.jsonl"
    recs = read_ledger(ledger)
    ids = [r["id"] for r in recs]
    assert [r["type"] for r in recs][-1] == "run.finished"  # the ledger write completed before the kill

    rx["hook"].mode = "ok"
    rx["hook"].release()
    st = json.loads(run_tfaudit("status", "--json", cwd=work, env=env).stdout)
    hook_status = next(s for s in st["sinks"] if s["sink"] == "webhook.siem")
    assert hook_status["pending"] == 6 and hook_status["in_doubt"] == 6

    fl = run_tfaudit("flush", cwd=work, env=env)
    assert fl.returncode == 0, fl.output
    assert [a.headers["Idempotency-Key"] for a in rx["hook"].accepted()] == ids
    assert (work / "mirror" / "audit.jsonl").read_bytes() == ledger.read_bytes()
    events = moto_server.client("logs").get_log_events(logGroupName=f"/tfaudit/{tag}", logStreamName="default",
                                                       startFromHead=True)["events"]
    assert sorted(json.loads(e["message"])["id"] for e in events) == sorted(ids)  # none twice
    (obj,) = moto_server.client("s3").list_objects_v2(Bucket=f"trail-{tag}")["Contents"]
    assert moto_server.client("s3").get_object(Bucket=f"trail-{tag}", Key=obj["Key"])["Body"].read() == \
        ledger.read_bytes()
    res = run_tfaudit("verify", str(ledger), "--public-key", str(keypair[1]))
    assert res.returncode == 0, res.output
    assert all(s["pending"] == 0 for s in json.loads(run_tfaudit("status", "--json", cwd=work, env=env).stdout)["sinks"])


def _imports(stderr: str) -> set[str]:
    return {ln.split("|")[-1].strip().split(".")[0] for ln in stderr.splitlines() if ln.startswith("import time:")}


@pytest.mark.parametrize("sinks", ["", 'sink "webhook" "w" {\n  url = "http://127.0.0.1:9/x"\n  secret_env = "S"\n}\n'])
def test_apply_without_aws_sinks_never_imports_boto3(tf_workdir: Callable[[str], Path], keypair: tuple[Path, Path],
                                                     base_env: dict[str, str], sinks: str) -> None:
    work = tf_workdir("quickstart")
    (work / ".tfaudit.hcl").write_text(sinks + "delivery {\n  deadline_seconds = 2\n  max_attempts = 1\n}\n"
                                       if sinks else "")
    res = subprocess.run([sys.executable, "-X", "importtime", "-m", "tfaudit", "apply", "-auto-approve"], cwd=work,
                         env={**base_env, "TFAUDIT_SIGNING_KEY": str(keypair[0]), "S": "secret"},
                         capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-2000:]
    mods = _imports(res.stderr)
    assert "tfaudit" in mods and "boto3" not in mods and "botocore" not in mods
    assert "tenacity" not in mods  # the retry loop is imported only when a POST fails and may be retried
