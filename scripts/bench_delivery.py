#!/usr/bin/env python3
"""Benchmark delivery to sinks: what a run pays after the ledger write, and what a dead endpoint costs.

    .venv/bin/python scripts/bench_delivery.py            # 10, 100 and 1000 records per run
    .venv/bin/python scripts/bench_delivery.py --sizes 1000 --repeat 5

For each size it writes one run of N resource records to a fresh ledger and times `deliver()`
(what `tfaudit apply` runs after the ledger write, and what `tfaudit flush` runs) to:

- a webhook on a local HTTP server in its own process (Python's http.server, keep-alive, HTTP/1.1):
  one signed POST per record over one connection, and `mode = "batch"` (one POST per run),
- S3 and CloudWatch Logs on a local moto server (one object per run; batched PutLogEvents), with
  the AWS service models already parsed, as `tfaudit apply` has them (it parses them in the
  background while terraform runs), and, at the largest size, in a fresh process as
  `tfaudit flush` runs (boto3's import and the models' parsing included),
- all of file, stdout (to /dev/null), webhook, S3 and CloudWatch at once (sinks run
  concurrently, so this is about the slowest one, not the sum);

then the cost of sinks that are down (connection refused, and a webhook that accepts the
connection but never answers), with the default delivery settings.

Each row is the best of --repeat deliveries (default 3) and prints its figure beside its anchor,
measured in the same run where there is one:
the webhook's record mode against the receiver alone (the same signed POSTs from a bare
http.client loop over one connection: in record mode the receiver, not tfaudit, sets the
pace), the other rows against the issue's targets (>= 5,000 records/s; <= 1 s for a
1,000-record run to S3 or CloudWatch).
Needs `moto[server]` and boto3 (the test extras).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT))

from sinks_support import Receiver, append_run, new_signer  # noqa: E402

from tfaudit.config import parse_config  # noqa: E402
from tfaudit.sinks.delivery import deliver, prepare  # noqa: E402

TARGET_RATE = 5000.0  # records/s, webhook
TARGET_SECONDS = 1.0  # a 1,000-record run to S3 or CloudWatch
RECEIVER_PID: int | None = None  # the webhook receiver's process, for its CPU time
CPU: dict[str, Cpu] = {}  # webhook record mode, largest size: "bare" and "tfaudit"


@dataclass
class Row:
    what: str
    records: int
    seconds: float
    pending: int
    anchor: str = ""  # what the figure is measured against
    ratio: str = ""
    rate: bool = True  # figure as records/s (else seconds)

    @property
    def figure(self) -> str:
        if self.rate:
            return f"{(self.records - self.pending) / self.seconds:,.0f} records/s"
        return f"{self.seconds:.2f} s"


def cpu_seconds(pid: int | None = None) -> float:
    """CPU time (user + system) used so far by this process, or by process pid."""
    if pid is None:
        return time.process_time()
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@dataclass
class Cpu:
    """CPU per record of one webhook delivery: tfaudit's process and the receiver's."""

    sender: float = 0.0
    receiver: float = 0.0


def timed(tmp: Path, n: int, sinks: str, env: dict[str, str], cpu: Cpu | None = None) -> tuple[float, int]:
    d = Path(tempfile.mkdtemp(dir=tmp))
    signer, _ = new_signer(d)
    cfg_path = d / ".tfaudit.hcl"
    cfg_path.write_text(sinks)
    cfg = parse_config(cfg_path)
    ledger = d / "ledger.jsonl"
    prepare(ledger, cfg.section("sink"), cfg.section("delivery"), print)  # what a run does before terraform
    for t in threading.enumerate():
        if t.name == "tfaudit-aws-warm":
            t.join()  # terraform's own run takes longer than this
    append_run(ledger, signer, [(f"aws_s3_bucket.b{i}", "create", "succeeded") for i in range(n)])
    c0, r0 = cpu_seconds(), cpu_seconds(RECEIVER_PID) if RECEIVER_PID else 0.0
    t0 = time.perf_counter()
    report = deliver(ledger, cfg.section("sink"), cfg.section("delivery"), env)
    took = time.perf_counter() - t0
    if cpu is not None and RECEIVER_PID:
        cpu.sender, cpu.receiver = (cpu_seconds() - c0) / (n + 2), (cpu_seconds(RECEIVER_PID) - r0) / (n + 2)
    return took, report.pending


def best(repeat: int, tmp: Path, n: int, sinks: str, env: dict[str, str]) -> tuple[float, int]:
    """The fastest of `repeat` deliveries (the machine is shared: the best is the least disturbed)."""
    return min(timed(tmp, n, sinks, env) for _ in range(repeat))


def cold(n: int, sinks: str, env: dict[str, str]) -> tuple[float, int]:
    """timed() in a fresh process with no warm-up, as `tfaudit flush` runs: boto3's import included."""
    code = ("import sys, tempfile, time\nfrom pathlib import Path\nsys.path[:0] = sys.argv[4:6]\n"
            "from sinks_support import append_run, new_signer\nfrom tfaudit.config import parse_config\n"
            "from tfaudit.sinks.delivery import deliver, enroll\n"
            "d = Path(tempfile.mkdtemp()); signer, _ = new_signer(d); p = d / 'c.hcl'; p.write_text(sys.argv[1])\n"
            "cfg = parse_config(p); ledger = d / 'ledger.jsonl'; enroll(ledger, cfg.section('sink'))\n"
            "append_run(ledger, signer, [(f'aws_s3_bucket.b{i}', 'create', 'succeeded') for i in range(int(sys.argv[2]))])\n"
            "assert 'boto3' not in sys.modules\n"
            "t0 = time.perf_counter(); r = deliver(ledger, cfg.section('sink'), None, dict(__import__('os').environ))\n"
            "print(time.perf_counter() - t0, r.pending)\n")
    out = subprocess.run([sys.executable, "-c", code, sinks, str(n), "", str(ROOT / "tests"), str(ROOT)],
                         env={**os.environ, **env}, capture_output=True, text=True, check=True).stdout.split()
    return float(out[0]), int(out[1])


def boto3_alone() -> float:
    code = ("import time; t0 = time.perf_counter(); import boto3\n"
            "boto3.session.Session().client('s3', region_name='us-east-1', aws_access_key_id='a',"
            " aws_secret_access_key='b'); print(time.perf_counter() - t0)")
    return float(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout)


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


def bare_posts(url: str, n: int, cpu: Cpu | None = None) -> float:
    """The receiver's own pace: n signed POSTs of a typical record over one kept-alive connection."""
    import http.client
    import json

    from tfaudit.sinks.webhook import signature_header

    parts = url.split("//", 1)[1].split(":")
    conn = http.client.HTTPConnection(parts[0], int(parts[1]))
    body = json.dumps({"pad": "x" * 1500}).encode()
    c0, r0 = cpu_seconds(), cpu_seconds(RECEIVER_PID) if RECEIVER_PID else 0.0
    t0 = time.perf_counter()
    for i in range(n):
        conn.request("POST", "/bare", body=body, headers={
            "X-Tfaudit-Signature": signature_header(b"bench-secret", body, int(time.time())),
            "Idempotency-Key": f"bare-{i}", "Content-Type": "application/json"})
        conn.getresponse().read()
    took = time.perf_counter() - t0
    conn.close()
    if cpu is not None and RECEIVER_PID:
        cpu.sender, cpu.receiver = (cpu_seconds() - c0) / n, (cpu_seconds(RECEIVER_PID) - r0) / n
    return took


def against_target(row: Row) -> Row:
    if row.rate:
        row.anchor, row.ratio = f"{TARGET_RATE:,.0f} records/s (target)", f"{row.records / row.seconds / TARGET_RATE:.2f}"
    else:
        row.anchor, row.ratio = f"{TARGET_SECONDS:g} s (target)", f"{row.seconds / TARGET_SECONDS:.2f}"
    return row


def measure(args: argparse.Namespace, env: dict[str, str], s3: object, hook_url: str, hook: Receiver) -> list[Row]:
    rows: list[Row] = []
    with tempfile.TemporaryDirectory() as t:
        tmp = Path(t)
        for n in args.sizes:
            bucket = f"bench-{uuid.uuid4().hex[:8]}"
            s3.create_bucket(Bucket=bucket)  # type: ignore[attr-defined]
            webhook = f'sink "webhook" "w" {{\n url = "{hook_url}/in"\n secret_env = "HOOK_SECRET"\n}}\n'
            batched = webhook.replace("}\n", ' mode = "batch"\n}\n')
            s3_sink = f'sink "s3" "a" {{\n bucket = "{bucket}"\n}}\n'
            cw = f'sink "cloudwatch" "c" {{\n log_group = "/bench/{uuid.uuid4().hex[:8]}"\n create = true\n}}\n'
            everything = webhook + s3_sink + cw + 'sink "file" "f" {\n path = "copy.jsonl"\n}\nsink "stdout" "o" {}\n'
            bare, (took, pending) = float("inf"), (float("inf"), 0)
            for _ in range(args.repeat):  # alternated, best of each: the receiver's pace beside tfaudit's
                c_bare, c_hook = Cpu(), Cpu()
                bare_took = bare_posts(hook_url, n + 2, c_bare)
                if bare_took < bare:
                    bare, CPU["bare"] = bare_took, c_bare
                got = timed(tmp, n, webhook, env, c_hook)
                if got < (took, pending):
                    (took, pending), CPU["tfaudit"] = got, c_hook
            rows.append(Row("webhook, one POST per record (target >= 5,000/s)", n + 2, took, pending,
                            f"{(n + 2) / bare:,.0f} records/s (the receiver alone: bare http.client POSTs)",
                            f"{bare / took:.2f}"))
            took, pending = best(args.repeat, tmp, n, batched, env)
            rows.append(against_target(Row('webhook, mode = "batch"', n + 2, took, pending)))
            for label, sinks in (("S3, a run (models parsed, as after `apply`'s warm-up)", s3_sink),
                                 ("CloudWatch Logs, a run (models parsed)", cw)):
                took, pending = best(args.repeat, tmp, n, sinks, env)
                rows.append(against_target(Row(label, n + 2, took, pending, rate=False)))
            took, pending = best(args.repeat, tmp, n, everything, env)
            rows.append(Row("all five at once", n + 2, took, pending, rate=False))
        n = max(args.sizes)
        for label, sinks in (("S3, a run, fresh process (`flush`: boto3 import included)", s3_sink),
                             ("CloudWatch Logs, a run, fresh process (boto3 import included)", cw)):
            took, pending = min(cold(n, sinks, env) for _ in range(args.repeat))
            rows.append(against_target(Row(label, n + 2, took, pending, rate=False)))
        took = min(boto3_alone() for _ in range(args.repeat))
        rows.append(Row("(of which: importing boto3 and making an S3 client, fresh process)", 0, took, 0, rate=False))
        webhook = f'sink "webhook" "w" {{\n url = "{hook.url}/in"\n secret_env = "HOOK_SECRET"\n}}\n'
        dead = 'sink "webhook" "w" {\n url = "http://127.0.0.1:9/in"\n secret_env = "HOOK_SECRET"\n}\n'
        took, pending = timed(tmp, 100, dead, env)
        rows.append(Row("webhook down (connection refused), defaults", 102, took, pending, rate=False))
        took, pending = timed(tmp, 100, 'sink "s3" "a" {\n bucket = "x-y-z"\n}\n',
                              {**env, "AWS_ENDPOINT_URL": "http://127.0.0.1:9"})
        rows.append(Row("s3 down (connection refused), defaults", 102, took, pending, rate=False))
        hook.mode = "hang"
        took, pending = timed(tmp, 100, webhook.replace("}\n", " timeout_seconds = 2\n}\n"), env)
        rows.append(Row("webhook never answers, timeout_seconds = 2, defaults", 102, took, pending, rate=False))
    return rows


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", type=int, nargs="+", default=[10, 100, 1000])
    ap.add_argument("--repeat", type=int, default=3, help="deliveries per row; the best is shown")
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
    global RECEIVER_PID
    RECEIVER_PID = child.pid
    env = {**aws_env, "HOOK_SECRET": "bench-secret"}
    load_before = os.getloadavg()[0]
    stdout = sys.stdout
    sys.stdout = open(os.devnull, "w")  # the stdout sink writes there
    try:
        rows = measure(args, env, s3, hook_url, hook)
    finally:
        sys.stdout.close()
        sys.stdout = stdout
        hook.stop()
        child.kill()
        moto.stop()
    print(f"load average (1 min): {load_before:.2f} before, {os.getloadavg()[0]:.2f} after")
    print("| what | records | figure | anchor | ratio | left pending |\n|---|---:|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r.what} | {r.records} | {r.figure} | {r.anchor} | {r.ratio} | {r.pending} |")
    print("\nCPU per record, webhook one POST per record (the fastest run of each; process CPU of the sender,"
          " /proc CPU of the receiver):")
    for who, c in CPU.items():
        print(f"- {who}: sender {c.sender * 1e6:.0f} us, receiver {c.receiver * 1e6:.0f} us")
    return 0


if __name__ == "__main__":
    sys.exit(main())
