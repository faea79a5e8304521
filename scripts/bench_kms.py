#!/usr/bin/env python3
"""Signing a run's records with AWS KMS (a local moto server) against signing them with Ed25519.

    .venv/bin/python scripts/bench_kms.py                 # runs of 10, 100 and 1,000 resources
    .venv/bin/python scripts/bench_kms.py --sizes 1000 --apply-seconds 12

Appends one run (run.started, N resource.changed, run.finished) to a fresh ledger with
each signer, as `tfaudit apply` does after terraform finishes, and counts the KMS `Sign`
calls. moto's KMS hashes a `MessageType=DIGEST` message again (see ENVIRONMENT.md); the
benchmark applies the same in-process fix the tests use (tests/sinks_support.py), so each
signature verifies. With --apply-seconds (the plain `terraform apply` time of the same run,
from scripts/bench_wrapper.py) it also prints what the extra time does to the wrapper's
ratio. Target: a 1,000-resource apply signed with KMS within 1.10x of the same apply signed
with Ed25519.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT))

from sinks_support import kms_digest_patch, run_records  # noqa: E402

from tfaudit.trail.ledger import Ledger  # noqa: E402
from tfaudit.trail.signing import generate_keypair, load_signer  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[10, 100, 1000])
    ap.add_argument("--apply-seconds", type=float, default=None)
    args = ap.parse_args()
    import logging

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    import boto3
    from moto.server import ThreadedMotoServer

    from tfaudit.trail.kms import KmsSigner

    setattr(*kms_digest_patch())
    moto = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    moto.start()
    host, port = moto.get_host_and_port()
    env = {"AWS_ENDPOINT_URL": f"http://{host}:{port}", "AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test",
           "AWS_REGION": "us-east-1"}
    kms = boto3.client("kms", endpoint_url=env["AWS_ENDPOINT_URL"], region_name="us-east-1",
                       aws_access_key_id="test", aws_secret_access_key="test")
    key = kms.create_key(KeySpec="ECC_NIST_P256", KeyUsage="SIGN_VERIFY")["KeyMetadata"]["KeyId"]
    rows = []
    try:
        with tempfile.TemporaryDirectory() as tmp:
            t = Path(tmp)
            ed = load_signer(generate_keypair(t / "key")[0])
            km = KmsSigner.from_config({"kms_key_id": key}, {**env, "HOME": tmp, "XDG_CACHE_HOME": tmp})
            calls = [0]
            real_sign = km.client.sign

            def counted(**kw: object) -> object:
                calls[0] += 1
                return real_sign(**kw)

            km.client.sign = counted
            for n in args.sizes:
                recs = run_records([(f"terraform_data.r{i}", "create", "succeeded") for i in range(n)])
                t0 = time.perf_counter()
                Ledger(t / f"ed-{n}.jsonl").append(recs, ed)
                ed_s = time.perf_counter() - t0
                calls[0] = 0
                t0 = time.perf_counter()
                Ledger(t / f"kms-{n}.jsonl").append(recs, km)
                kms_s = time.perf_counter() - t0
                rows.append((n, len(recs), ed_s, kms_s, calls[0]))
    finally:
        moto.stop()
    print("| resources | records | Ed25519 | KMS | KMS Sign calls | extra per run |"
          + (" apply ratio (KMS / Ed25519) |" if args.apply_seconds else ""))
    print("|---:|---:|---:|---:|---:|---:|" + ("---:|" if args.apply_seconds else ""))
    for n, recs, ed_s, kms_s, calls_n in rows:
        line = f"| {n:,} | {recs:,} | {ed_s:.3f} s | {kms_s:.3f} s | {calls_n:,} | {kms_s - ed_s:.2f} s |"
        if args.apply_seconds:
            line += f" {(args.apply_seconds + kms_s) / (args.apply_seconds + ed_s):.3f} |"
        print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
