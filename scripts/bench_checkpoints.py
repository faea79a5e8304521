#!/usr/bin/env python3
"""Benchmark checkpoints and proofs on ledgers of 1k, 10k and 100k records.

    .venv/bin/python scripts/bench_checkpoints.py              # 1k, 10k, 100k
    .venv/bin/python scripts/bench_checkpoints.py --sizes 1000

For each size it writes a ledger of real, signed, chained records (each a resource.changed
record of about 1.3 kB, as a terraform_data change makes), then measures, best of 3:

- anchor: what every wrapped run adds when checkpoints are configured: read the ledger
  under its lock, build the tree, check the previous checkpoint, sign, write to a directory
  (with a consistency proof from a checkpoint 10 records earlier);
- verify --checkpoints: check the ledger against 100 checkpoints in a directory;
- prove inclusion: `tfaudit prove inclusion` of the middle record as a user runs it
  (a fresh process, imports included), and verify-proof of its output.

Prints a Markdown table for the README.
"""

from __future__ import annotations

import argparse
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tfaudit.trail import checkpoints as cps  # noqa: E402
from tfaudit import records  # noqa: E402
from tfaudit.trail import merkle
from tfaudit.trail.ledger import Ledger  # noqa: E402
from tfaudit.trail.signing import generate_keypair, load_signer, load_verifier  # noqa: E402


def make_ledger(path: Path, n: int, signer: object) -> None:
    run = records.RunInfo(id=records.RunId(records.new_id()), command="apply", args=("-auto-approve",),
                          tool="terraform", tool_version="1.11.4", workspace="default", working_dir="/srv/infra")
    actor = {"user": "alice", "os_user": "alice", "hostname": "build-7", "git": None, "ci": None}
    led = Ledger(path)
    batch: list[dict[str, object]] = []
    for i in range(n):
        res = {"address": f"terraform_data.r[{i}]", "previous_address": None, "module": None, "mode": "managed",
               "type": "terraform_data", "name": "r", "index": i, "deposed": None,
               "provider": "terraform.io/builtin/terraform", "actions": ["update"], "action": "update",
               "action_reason": None, "importing": None, "status": "succeeded", "error": None,
               "elapsed_seconds": 0.1, "changed_paths": ["input.gen", "output"], "changed_paths_truncated": False,
               "before": {"input": {"gen": 1, "label": "x" * 200}}, "after": {"input": {"gen": 2, "label": "x" * 200}}}
        batch.append(records.base_record("resource.changed", run, actor, resource=res))
        if len(batch) == 1000:
            led.append(batch, signer)  # type: ignore[arg-type]
            batch = []
    if batch:
        led.append(batch, signer)  # type: ignore[arg-type]


def best(fn, repeat: int = 3) -> float:  # type: ignore[no-untyped-def]
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", type=int, nargs="*", default=[1000, 10_000, 100_000])
    args = ap.parse_args()
    from tfaudit import logs

    logs.configure("console", 0)  # warnings only
    rows = []
    with tempfile.TemporaryDirectory() as tmp_s:
        tmp = Path(tmp_s)
        priv, pub = generate_keypair(tmp / "k")
        signer, verifier = load_signer(priv), load_verifier(pub)
        for n in args.sizes:
            ledger = tmp / f"ledger-{n}.jsonl"
            make_ledger(ledger, n, signer)
            mb = ledger.stat().st_size / 1e6
            lines = cps.read_lines(ledger)
            tree = merkle.Tree.from_data(lines)

            def anchor() -> None:
                store = cps.DirStore(tmp / f"anchor-{n}-{time.perf_counter_ns()}")
                prev = cps.Checkpoint("bench", n - 10, tree.root(n - 10))
                store.store(prev, prev.sign(signer), None)
                cps.anchor(ledger, signer, cps.CheckpointSettings(location=str(store.path)), {})

            store = cps.DirStore(tmp / f"many-{n}")
            step = max(1, n // 100)
            roots = merkle.roots_at(tree.leaves, range(step, n + 1, step))
            prev_size = 0
            for size in range(step, n + 1, step):
                cp = cps.Checkpoint("bench", size, roots[size])
                proof = None if not prev_size else {
                    "from_size": prev_size, "from_root": cps.Checkpoint("b", prev_size, roots[prev_size]).root_b64,
                    "hashes": [__import__("base64").b64encode(h).decode() for h in tree.consistency_proof(prev_size, size)]}
                store.store(cp, cp.sign(signer), proof)
                prev_size = size

            def check() -> None:
                report = cps.check_ledger(ledger, store, [verifier])
                assert report.ok, report.problems

            proof_file = tmp / f"proof-{n}.json"

            def prove() -> None:
                subprocess.run([sys.executable, "-m", "tfaudit", "prove", "inclusion", str(ledger), "--seq", str(n // 2),
                                "--signing-key", str(priv), "-o", str(proof_file)], check=True, capture_output=True)

            def verify_proof() -> None:
                subprocess.run([sys.executable, "-m", "tfaudit", "verify-proof", str(proof_file), "--public-key", str(pub)],
                               check=True, capture_output=True)

            t_anchor, t_check, t_prove = best(anchor), best(check), best(prove)
            t_vp = best(verify_proof)
            rows.append((n, mb, t_anchor, t_check, t_prove, t_vp))
            print(f"{n} records ({mb:.1f} MB): anchor {t_anchor:.3f}s, verify --checkpoints (100) {t_check:.3f}s, "
                  f"prove {t_prove:.3f}s, verify-proof {t_vp:.3f}s", file=sys.stderr)
    print(f"\n{platform.processor() or platform.machine()}, Python {platform.python_version()}, best of 3:\n")
    print("| records | ledger | anchor after a run | verify --checkpoints (100 checkpoints) | prove inclusion (CLI) | verify-proof (CLI) |")
    print("|---:|---:|---:|---:|---:|---:|")
    for n, mb, a, c, p, v in rows:
        print(f"| {n:,} | {mb:.1f} MB | {a * 1000:.0f} ms | {c * 1000:.0f} ms | {p * 1000:.0f} ms | {v * 1000:.0f} ms |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
