"""Benchmark the ledger: appending, then tfaudit verify, log, history and report on it.

    .venv/bin/python scripts/bench_reading.py [RUNS] [RESOURCES_PER_RUN]

Builds a real signed ledger (RUNS applies of RESOURCES_PER_RUN changes each) in a temp dir,
then times the CLI commands as a user runs them (subprocesses, output to a pipe).
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from trail_factory import Res, add_run  # noqa: E402

from tfaudit.trail.signing import generate_keypair, load_signer  # noqa: E402


def main() -> None:
    runs = int(sys.argv[1]) if len(sys.argv) > 1 else 1000
    per_run = int(sys.argv[2]) if len(sys.argv) > 2 else 10
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        priv, pub = generate_keypair(d / "key")
        signer = load_signer(priv)
        ledger = d / "ledger.jsonl"
        t0 = time.monotonic()
        for i in range(runs):
            add_run(ledger, signer, time=f"2026-{1 + i % 12:02d}-{1 + i % 28:02d}T{i % 24:02d}:00:00.{i:06d}Z",
                    actor=f"user{i % 7}", workspace=f"ws{i % 5}", status="succeeded" if i % 9 else "partial",
                    resources=[Res(f"terraform_data.r{j}", "update" if j % 3 else "replace",
                                   "succeeded" if (i + j) % 11 else "failed", error=None if (i + j) % 11 else "boom")
                               for j in range(per_run)])
        size, n, took = ledger.stat().st_size, runs * (per_run + 2), time.monotonic() - t0
        print(f"ledger: {runs} runs, {n} records, {size / 1e6:.1f} MB "
              f"(appended run by run under the lock with fsync in {took:.1f} s: {n / took:,.0f} records/s)")
        cmds = {
            "verify": ["verify", str(ledger), "--public-key", str(pub)],
            "log": ["log", str(ledger)],
            "log --actor user3 --outcome partial": ["log", str(ledger), "--actor", "user3", "--outcome", "partial"],
            "history terraform_data.r1": ["history", "terraform_data.r1", "--ledger", str(ledger)],
            "report (chain only)": ["report", "--html", str(d / "r.html"), "--ledger", str(ledger)],
            "report --public-key": ["report", "--html", str(d / "r.html"), "--ledger", str(ledger),
                                    "--public-key", str(pub)],
        }
        for name, args in cmds.items():
            t = time.monotonic()
            res = subprocess.run([sys.executable, "-m", "tfaudit", *args], capture_output=True, text=True)
            assert res.returncode == 0, res.stderr
            print(f"{name:<40} {time.monotonic() - t:6.2f} s")


if __name__ == "__main__":
    main()
