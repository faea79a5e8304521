#!/usr/bin/env python3
"""Signing with AWS KMS (a local moto server) against signing with Ed25519: time and KMS calls.

    .venv/bin/python scripts/bench_kms.py                      # appends of runs of 10, 100 and 1,000 resources
    .venv/bin/python scripts/bench_kms.py --apply 1000         # and whole `tfaudit apply` runs of 1,000 resources
    .venv/bin/python scripts/bench_kms.py --sizes --apply 1000 --repeat 3

Appends: one run (run.started, N resource.changed, run.finished) appended to a fresh ledger
with each signer, as `tfaudit apply` does after terraform finishes.

Applies (--apply N): `tfaudit apply -auto-approve` of N `terraform_data` resources from a fresh,
initialised copy, alternating (A B B A ...) an Ed25519 key (the anchor) and a
`signing { signer = "kms" }` config (the figure), --repeat times each; the median of each and
their ratio, by the wall clock and by the CPU time of tfaudit and terraform (steadier on a
shared machine; it leaves out the time spent waiting for KMS, which the wall clock holds). Target: a
1,000-resource apply signed with KMS within 1.10x of the same apply signed with Ed25519.

KMS `Sign` calls are counted where the moto server answers them. moto's KMS hashes a
`MessageType=DIGEST` message again (see ENVIRONMENT.md); the in-process server gets the fix
the tests use (tests/sinks_support.py), so every signature verifies.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT))

from sinks_support import kms_digest_patch, run_records  # noqa: E402

from tfaudit.trail.ledger import Ledger  # noqa: E402
from tfaudit.trail.signing import generate_keypair, load_signer  # noqa: E402

CALLS = [0]


def _serve_kms() -> tuple[Any, dict[str, str], str]:
    """A moto server in this process that signs DIGEST messages as AWS KMS does, counting Sign calls."""
    import logging

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    import boto3
    from moto.server import ThreadedMotoServer

    cls, attr, sign = kms_digest_patch()

    def counted(self: Any) -> str:
        CALLS[0] += 1
        return sign(self)  # type: ignore[no-any-return]

    setattr(cls, attr, counted)
    moto = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    moto.start()
    host, port = moto.get_host_and_port()
    env = {"AWS_ENDPOINT_URL": f"http://{host}:{port}", "AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test",
           "AWS_REGION": "us-east-1", "AWS_DEFAULT_REGION": "us-east-1"}
    kms = boto3.client("kms", endpoint_url=env["AWS_ENDPOINT_URL"], region_name="us-east-1",
                       aws_access_key_id="test", aws_secret_access_key="test")
    key = kms.create_key(KeySpec="ECC_NIST_P256", KeyUsage="SIGN_VERIFY")["KeyMetadata"]["KeyId"]
    return moto, env, key


def bench_appends(sizes: list[int], repeat: int, env: dict[str, str], key: str, tmp: Path) -> list[tuple[Any, ...]]:
    from tfaudit.trail.kms import KmsSigner

    ed = load_signer(generate_keypair(tmp / "key")[0])
    km = KmsSigner.from_config({"kms_key_id": key}, {**env, "HOME": str(tmp), "XDG_CACHE_HOME": str(tmp)})
    Ledger(tmp / "warm.jsonl").append(run_records([("terraform_data.w", "create", "succeeded")]), ed)  # schema, imports
    rows = []
    for n in sizes:
        recs = run_records([(f"terraform_data.r{i}", "create", "succeeded") for i in range(n)])
        ed_s: list[float] = []
        kms_s: list[float] = []
        calls = 0
        for i in range(repeat):  # alternating, each into a fresh ledger
            t0 = time.perf_counter()
            Ledger(tmp / f"ed-{n}-{i}.jsonl").append(recs, ed)
            ed_s.append(time.perf_counter() - t0)
            CALLS[0] = 0
            t0 = time.perf_counter()
            Ledger(tmp / f"kms-{n}-{i}.jsonl").append(recs, km)
            kms_s.append(time.perf_counter() - t0)
            calls = max(calls, CALLS[0])
        rows.append((f"append of one run, {n:,} resources (median of {repeat})", len(recs), calls,
                     statistics.median(kms_s), statistics.median(ed_s)))
    return rows


def _run(argv: list[str], cwd: Path, env: dict[str, str]) -> tuple[float, float]:
    """(wall seconds, CPU seconds of the process and its children: tfaudit and terraform)."""
    import resource

    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    res = subprocess.run(argv, cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                         stdin=subprocess.DEVNULL)
    dt = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if res.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} failed ({res.returncode}) in {cwd}: {res.stderr.decode()[-2000:]}")
    return dt, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def bench_apply(n: int, repeat: int, aws_env: dict[str, str], key: str, tmp: Path) -> list[tuple[Any, ...]]:
    tf = shutil.which("terraform") or sys.exit("terraform is not on PATH")
    home = tmp / "home"
    home.mkdir()
    (tmp / "terraformrc").write_text("")
    keep = {k: v for k, v in os.environ.items() if k in ("PATH", "LANG", "LC_ALL", "TMPDIR")}
    env = {**keep, "HOME": str(home), "TF_IN_AUTOMATION": "1", "CHECKPOINT_DISABLE": "1",
           "TF_CLI_CONFIG_FILE": str(tmp / "terraformrc"), "TFAUDIT_LOG_FORMAT": "json", "USER": "bench",
           "PYTHONPATH": str(ROOT), "XDG_CACHE_HOME": str(home / ".cache"), **aws_env}
    generate_keypair(home / "key")
    base = tmp / f"base-{n}"
    base.mkdir()
    (base / "main.tf").write_text(f'resource "terraform_data" "r" {{\n  count = {n}\n'
                                  '  input = { i = count.index, tags = { env = "prod", team = "platform" } }\n}\n')
    subprocess.run([tf, "init", "-input=false"], cwd=base, env=env, check=True, capture_output=True)
    argv = [sys.executable, "-m", "tfaudit", "apply", "-auto-approve", "-input=false"]
    runs: dict[str, list[tuple[float, float]]] = {"ed": [], "kms": []}
    calls: list[int] = []
    for i in range(repeat):  # A B B A ...: a load that rises or falls during the runs favours neither
        for signer in (("ed", "kms") if i % 2 == 0 else ("kms", "ed")):
            work = tmp / f"{signer}-{i}"
            shutil.copytree(base, work, symlinks=True)
            if signer == "kms":
                (work / ".tfaudit.hcl").write_text(f'signing {{\n  signer     = "kms"\n  kms_key_id = "{key}"\n}}\n')
                CALLS[0] = 0
                runs["kms"].append(_run(argv, work, env))
                calls.append(CALLS[0])
            else:
                runs["ed"].append(_run(argv, work, {**env, "TFAUDIT_SIGNING_KEY": str(home / "key")}))
    for what, k in (("wall", 0), ("CPU", 1)):
        print(f"apply {n}, {what}: Ed25519 {[round(r[k], 2) for r in runs['ed']]}, "
              f"KMS {[round(r[k], 2) for r in runs['kms']]}, Sign calls {calls}", file=sys.stderr)
    return [(f"`tfaudit apply`, {n:,} resources, {what} (median of {repeat})", n + 2, max(calls),
             statistics.median(r[k] for r in runs["kms"]), statistics.median(r[k] for r in runs["ed"]))
            for what, k in (("wall clock", 0), ("CPU of tfaudit and terraform", 1))]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", type=int, nargs="*", default=[10, 100, 1000])
    ap.add_argument("--apply", type=int, nargs="*", default=[], metavar="N")
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    moto, env, key = _serve_kms()
    rows = []
    try:
        with tempfile.TemporaryDirectory(prefix="tfaudit-bench-kms-") as tmpd:
            tmp = Path(tmpd)
            rows += bench_appends(args.sizes, args.repeat, env, key, tmp)
            for n in args.apply:
                (tmp / f"apply-{n}").mkdir()
                rows += bench_apply(n, args.repeat, env, key, tmp / f"apply-{n}")
    finally:
        moto.stop()
    print("| what | records | KMS Sign calls | KMS | Ed25519 | ratio (KMS / Ed25519) |")
    print("|---|---:|---:|---:|---:|---:|")
    for what, recs, calls, kms_s, ed_s in rows:
        print(f"| {what} | {recs:,} | {calls:,} | {kms_s:.3f} s | {ed_s:.3f} s | {kms_s / ed_s:.3f} |")
    print(f"load average: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
