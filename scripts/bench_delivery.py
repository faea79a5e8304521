#!/usr/bin/env python3
"""Benchmark delivery to sinks: what a run pays after the ledger write, and what a dead endpoint costs.

    .venv/bin/python scripts/bench_delivery.py            # 10, 100 and 1000 records per run
    .venv/bin/python scripts/bench_delivery.py --sizes 100

For each size it writes one run of N resource records (about 1.6 kB each) to a fresh
ledger and times `deliver()` (what `tfaudit apply` runs after the ledger write, and what
`tfaudit flush` runs) to:

- a webhook on a local HTTP server in its own process (keep-alive, HTTP/1.1): one signed POST
  per record over one connection, and `mode = "batch"` (one POST per run),
- S3 and CloudWatch Logs on a local moto server (one object per run; batched PutLogEvents),
- all of file, stdout (to /dev/null), webhook, S3 and CloudWatch at once (sinks run
  concurrently, so this is about the slowest one, not the sum);

then the cost of sinks that are down (connection refused, and a webhook that accepts the
connection but never answers), with the default delivery settings. Prints a Markdown table
with records per second against the targets (webhook >= 5,000 records/s; S3 and CloudWatch
<= 1 s for a 1,000-record run). The receiver is Python's http.server: in record mode it,
not tfaudit, sets the pace (see the "receiver alone" row: the same POSTs sent by a bare
http.client loop).
Needs `moto[server]` and boto3 (the test extras).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT))

from sinks_support import Receiver, append_run, new_signer  # noqa: E402

from tfaudit.config import parse_config  # noqa: E402
from tfaudit.sinks.delivery import deliver, enroll  # noqa: E402


def timed(tmp: Path, n: int, sinks: str, env: dict[str, str]) -> tuple[float, int]:
    d = Path(tempfile.mkdtemp(dir=tmp))
    signer, _ = new_signer(d)
    cfg_path = d / ".tfaudit.hcl"
    cfg_path.write_text(sinks)
    cfg = parse_config(cfg_path)
    ledger = d / "ledger.jsonl"
    enroll(ledger, cfg.section("sink"))
    append_run(ledger, signer, [(f"aws_s3_bucket.b{i}", "create", "succeeded") for i in range(n)])
    t0 = time.perf_counter()
    report = deliver(ledger, cfg.section("sink"), cfg.section("delivery"), env)
    return time.perf_counter() - t0, report.pending


_RECEIVER = """
import sys, time
sys.path.insert(0, sys.argv[1])
from sinks_support import Receiver
r = Receiver(secret=b"bench-secret")
print(r.port, flush=True)
time.sleep(3600)
"""


def receiver_process() -> tuple[subprocess.Popen[str], str]:
    """A keep-alive webhook receiver in its own process, so it does not share tfaudit's GIL."""
    child = subprocess.Popen([sys.executable, "-c", _RECEIVER, str(ROOT / "tests")], stdout=subprocess.PIPE, text=True)
    assert child.stdout is not None
    return child, f"http://127.0.0.1:{int(child.stdout.readline())}"


def bare_posts(url: str, n: int) -> float:
    """The receiver's own pace: n signed POSTs of a typical record over one kept-alive connection."""
    import http.client
    import json

    from tfaudit.sinks.webhook import signature_header

    parts = url.split("//", 1)[1].split(":")
    conn = http.client.HTTPConnection(parts[0], int(parts[1]))
    body = json.dumps({"pad": "x" * 1500}).encode()
    t0 = time.perf_counter()
    for i in range(n):
        conn.request("POST", "/bare", body=body, headers={
            "X-Tfaudit-Signature": signature_header(b"bench-secret", body, int(time.time())),
            "Idempotency-Key": f"bare-{i}", "Content-Type": "application/json"})
        conn.getresponse().read()
    conn.close()
    return time.perf_counter() - t0


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", type=int, nargs="+", default=[10, 100, 1000])
    args = ap.parse_args()
    import logging

    import structlog
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    from moto.server import ThreadedMotoServer

    moto = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    moto.start()
    host, port = moto.get_host_and_port()
    url = f"http://{host}:{port}"
    aws_env = {"AWS_ENDPOINT_URL": url, "AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test",
               "AWS_REGION": "us-east-1"}
    import boto3

    s3 = boto3.client("s3", endpoint_url=url, region_name="us-east-1", aws_access_key_id="test",
                      aws_secret_access_key="test")
    hook = Receiver(secret=b"bench-secret")
    child, hook_url = receiver_process()
    env = {**aws_env, "HOOK_SECRET": "bench-secret"}
    stdout = sys.stdout
    sys.stdout = open(os.devnull, "w")  # the stdout sink writes there
    rows: list[tuple[str, int, float, int]] = []
    try:
        with tempfile.TemporaryDirectory() as t:
            tmp = Path(t)
            for n in args.sizes:
                bucket = f"bench-{uuid.uuid4().hex[:8]}"
                s3.create_bucket(Bucket=bucket)
                webhook = f'sink "webhook" "w" {{\n url = "{hook_url}/in"\n secret_env = "HOOK_SECRET"\n}}\n'
                batched = webhook.replace("}\n", ' mode = "batch"\n}\n')
                s3_sink = f'sink "s3" "a" {{\n bucket = "{bucket}"\n}}\n'
                cw = f'sink "cloudwatch" "c" {{\n log_group = "/bench/{uuid.uuid4().hex[:8]}"\n create = true\n}}\n'
                everything = webhook + s3_sink + cw + 'sink "file" "f" {\n path = "copy.jsonl"\n}\nsink "stdout" "o" {}\n'
                for label, sinks in (("webhook, one POST per record", webhook), ("webhook, mode = batch", batched),
                                     ("s3", s3_sink), ("cloudwatch", cw), ("all five at once", everything)):
                    took, pending = timed(tmp, n, sinks, env)
                    rows.append((label, n + 2, took, pending))
                rows.append(("receiver alone: bare http.client POSTs, one connection", n + 2, bare_posts(hook_url, n + 2), 0))
            webhook = f'sink "webhook" "w" {{\n url = "{hook.url}/in"\n secret_env = "HOOK_SECRET"\n}}\n'
            dead = 'sink "webhook" "w" {\n url = "http://127.0.0.1:9/in"\n secret_env = "HOOK_SECRET"\n}\n'
            took, pending = timed(tmp, 100, dead, env)
            rows.append(("webhook down (connection refused), defaults", 102, took, pending))
            took, pending = timed(tmp, 100, 'sink "s3" "a" {\n bucket = "x-y-z"\n}\n',
                                  {**env, "AWS_ENDPOINT_URL": "http://127.0.0.1:9"})
            rows.append(("s3 down (connection refused), defaults", 102, took, pending))
            hook.mode = "hang"
            took, pending = timed(tmp, 100, webhook.replace("}\n", " timeout_seconds = 2\n}\n"), env)
            rows.append(("webhook never answers, timeout_seconds = 2, defaults", 102, took, pending))
    finally:
        sys.stdout.close()
        sys.stdout = stdout
        hook.stop()
        child.kill()
        moto.stop()
    targets = {"webhook, one POST per record": ">= 5,000/s", "webhook, mode = batch": ">= 5,000/s",
               "s3": "<= 1 s at 1,000", "cloudwatch": "<= 1 s at 1,000"}
    print("| sinks | records | seconds | records/s | target | left pending |\n|---|---:|---:|---:|---|---:|")
    for label, n, took, pending in rows:
        print(f"| {label} | {n} | {took:.2f} | {(n - pending) / took:,.0f} | {targets.get(label, '')} | {pending} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
