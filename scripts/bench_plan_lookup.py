#!/usr/bin/env python3
"""Benchmark finding a saved plan's plan.recorded record (`tfaudit apply PLANFILE`) on big ledgers.

    .venv/bin/python scripts/bench_plan_lookup.py                 # 10k, 100k, 1M records
    .venv/bin/python scripts/bench_plan_lookup.py --sizes 100000

For each size it writes a ledger of chained records (scripts/bench_checkpoints.py's generator:
~1.3 kB resource.changed records) with a `tfaudit plan` record near its start, then measures:

- lookup (the figure): `run.binding.lookup` after a `tfaudit plan -out` run appended 12 more
  records and its plan.recorded, through the plan index kept beside the ledger (it reads the
  lines appended since its last use, then the records it points to), best of 3;
- its anchor: the whole-ledger scan that the lookup was before the index (every line parsed; once);
- first lookup: building the index from nothing (once per ledger, or when it no longer fits);
- out-of-band check (`run.outofband.last_known_state`): the newest state record of the workspace,
  12 records from the tail, read backwards through the store; its anchor is the same
  whole-ledger scan.

Prints a Markdown table for the README.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

from bench_checkpoints import append_run, fast_ledger  # noqa: E402
from tfaudit import records  # noqa: E402
from tfaudit.run.binding import lookup  # noqa: E402
from tfaudit.run.outofband import last_known_state  # noqa: E402
from tfaudit.trail.signing import generate_keypair, load_signer  # noqa: E402
from tfaudit.trail.store import open_store  # noqa: E402


def record_plan(store, signer, sha: str, work: Path) -> int:  # type: ignore[no-untyped-def]
    run = records.RunInfo(id=records.RunId(records.new_id()), command="plan", args=("-out=plan.tfplan",),
                          tool="terraform", tool_version="1.11.4", workspace="default", working_dir=str(work),
                          plan_sha256=sha, plan_file="plan.tfplan")
    actor = {"user": "alice", "os_user": "alice", "hostname": "build-7", "git": None, "ci": None}
    rec = records.base_record("plan.recorded", run, actor, plan={"sha256": sha, "summary": {"update": 1}, "changes": []})
    return int(store.append([rec], signer)[0].seq)


def full_scan(store, sha: str) -> dict | None:  # type: ignore[no-untyped-def,type-arg]
    """What lookup did before the index: parse every record, keep the newest plan.recorded for sha."""
    found = None
    for rec in store.records():
        if rec.get("type") == "plan.recorded" and (rec.get("plan") or {}).get("sha256") == sha:
            found = rec
    return found


def out_of_band(store, signer, work: Path) -> float:  # type: ignore[no-untyped-def]
    """A run.finished naming the workspace's state, 12 records before the tail; best of 3 backward reads."""
    from types import SimpleNamespace

    run = records.RunInfo(id=records.RunId(records.new_id()), command="apply", args=(), tool="terraform",
                          tool_version="1.11.4", workspace="default", working_dir=str(work))
    actor = {"user": "alice", "os_user": "alice", "hostname": "build-7", "git": None, "ci": None}
    after = SimpleNamespace(serial=7, lineage="bench", sha256="0" * 64, resources=[])
    rec = records.base_record("run.finished", run, actor, outcome=records.outcome_body(
        status="succeeded", exit_code=0, counts={}, state_before=None, state_after=after))
    seq = int(store.append([rec], signer)[0].seq)
    append_run(Path(store.url), signer, 12)
    times = []
    for _ in range(3):
        t0 = time.perf_counter()
        known = last_known_state(store, str(work), "default")
        times.append(time.perf_counter() - t0)
        assert known is not None and known.seq == seq
    return min(times)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", type=int, nargs="*", default=[10_000, 100_000, 1_000_000])
    args = ap.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp_s:
        tmp = Path(tmp_s)
        priv, _ = generate_keypair(tmp / "k")
        signer = load_signer(priv)
        for n in args.sizes:
            ledger = tmp / f"ledger-{n}.jsonl"
            fast_ledger(ledger, n, signer)
            store = open_store(ledger)
            record_plan(store, signer, "0" * 64, tmp)
            t0 = time.perf_counter()
            assert lookup(store, "0" * 64, tmp / "plan.tfplan", signer).match is not None
            t_first = time.perf_counter() - t0
            times, t_scan = [], []
            for i in range(1, 4):
                append_run(ledger, signer, 12)
                sha = f"{i:064x}"
                seq = record_plan(store, signer, sha, tmp)
                t0 = time.perf_counter()
                found = lookup(store, sha, tmp / "plan.tfplan", signer)
                times.append(time.perf_counter() - t0)
                assert found.match is not None and found.match["chain"]["seq"] == seq
                if i == 1:  # the scan is what is slow: once is enough to see it
                    t0 = time.perf_counter()
                    assert full_scan(store, sha) == json.loads(json.dumps(found.match))
                    t_scan.append(time.perf_counter() - t0)
            t_oob = out_of_band(store, signer, tmp)
            mb = ledger.stat().st_size / 1e6
            rows.append((n, mb, min(times), min(t_scan), t_first, t_oob))
            print(f"{n} records ({mb:.0f} MB): lookup {min(times) * 1000:.1f} ms, full scan {min(t_scan):.2f} s, "
                  f"first lookup (index built) {t_first:.2f} s, out-of-band check {t_oob * 1000:.1f} ms", file=sys.stderr)
            ledger.unlink()
    print(f"\n{platform.processor() or platform.machine()}, Python {platform.python_version()}, best of 3:\n")
    print("| records | ledger | plan lookup (indexed) | its anchor: whole-ledger scan | ratio | first lookup (builds the index) "
          "| out-of-band check (tail) |")
    print("|---:|---:|---:|---:|---:|---:|---:|")
    for n, mb, t, scan, first, oob in rows:
        print(f"| {n:,} | {mb:.0f} MB | {t * 1000:.1f} ms | {scan * 1000:.0f} ms | {t / scan:.4f} | {first * 1000:.0f} ms "
              f"| {oob * 1000:.1f} ms |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
