"""Benchmark writing and verifying a ledger: records appended per second, `tfaudit verify` wall time.

    .venv/bin/python scripts/bench_verify.py [RUNS] [RESOURCES_PER_RUN]

Builds a real signed ledger (RUNS applies of RESOURCES_PER_RUN changes each, one locked,
fsynced append per run as tfaudit does) in a temp dir, then times `tfaudit verify` as a user
runs it (a subprocess, output to a pipe).
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from trail_factory import Res, add_run  # noqa: E402

from tfaudit.signing import generate_keypair, load_signer  # noqa: E402


def main() -> None:
    runs = int(sys.argv[1]) if len(sys.argv) > 1 else 500
    per_run = int(sys.argv[2]) if len(sys.argv) > 2 else 10
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        priv, pub = generate_keypair(d / "key")
        signer = load_signer(priv)
        ledger = d / "ledger.jsonl"
        t0 = time.monotonic()
        for i in range(runs):
            add_run(ledger, signer, time=f"2026-01-01T00:00:00.{i:06d}Z",
                    resources=[Res(f"terraform_data.r{j}", "update", "succeeded") for j in range(per_run)])
        write = time.monotonic() - t0
        n = runs * (per_run + 2)
        t0 = time.monotonic()
        res = subprocess.run([sys.executable, "-m", "tfaudit", "verify", str(ledger), "--public-key", f"{d / 'key'}.pub"],
                             capture_output=True, text=True, check=False)
        verify = time.monotonic() - t0
        assert res.returncode == 0, res.stdout + res.stderr
        print(f"{n} records ({ledger.stat().st_size / 1e6:.1f} MB): append {n / write:,.0f} records/s "
              f"({write:.2f} s); tfaudit verify {verify:.2f} s ({n / verify:,.0f} records/s)")


if __name__ == "__main__":
    main()
