#!/usr/bin/env python3
"""Peak memory of what `tfaudit apply` holds for a large plan, against the plan JSON's size.

    .venv/bin/python scripts/bench_memory.py                 # 100,000 changes
    .venv/bin/python scripts/bench_memory.py --changes 20000 --plan /tmp/plans/plan-20000.json

Planning 100,000 real resources takes terraform longer than a benchmark should, so this
replays tfaudit's own side of an apply on a plan in `terraform show -json`'s exact shape
(scripts/bench_analyze.py's generator): in a fresh process it takes the plan's bytes as
`terraform show -json` hands them over, parses them (tfaudit.parse.plan), learns the plan's
secrets, builds the `run.started` plan body and one redacted `resource.changed` body per
change, as the runner does between `terraform show -json` and the ledger write. Memory is the
process's peak RSS (VmHWM) above its baseline after the imports. Target: <= 2x the file.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))

_CHILD = r"""
import sys, time
from tfaudit import records
from tfaudit.parse.plan import parse_plan
from tfaudit.redact import Redactor

def hwm_kb():
    with open("/proc/self/status") as f:
        return int(next(line for line in f if line.startswith("VmHWM:")).split()[1])

base = hwm_kb()
t0 = time.perf_counter()
data = open(sys.argv[1], "rb").read()          # what terraform show -json returns
plan = parse_plan(data, source="terraform show -json")
del data
t_parse = time.perf_counter()
redactor = Redactor()
records.learn_plan_secrets(plan, redactor)
body = records.plan_body(plan, "0" * 64, redactor)
changes = [ch for ch in plan.resource_changes if records.is_recorded_change(ch)]
outcome = records.Outcome("succeeded", None, 0.1)
bodies = [records.resource_body(ch, outcome, redactor) for ch in changes]
t_bodies = time.perf_counter()
print(base, hwm_kb(), t_parse - t0, t_bodies - t_parse, len(bodies))
"""


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--changes", type=int, default=100_000)
    ap.add_argument("--plan", type=Path, help="use (or write) the generated plan here")
    args = ap.parse_args()
    from bench_analyze import generate_plan

    with tempfile.TemporaryDirectory(prefix="tfaudit-bench-memory-") as tmp:
        path = args.plan or Path(tmp) / f"plan-{args.changes}.json"
        if not path.exists():
            generate_plan(args.changes, path)
        size = path.stat().st_size
        res = subprocess.run([sys.executable, "-c", _CHILD, str(path)], capture_output=True, text=True, cwd=ROOT)
        if res.returncode != 0:
            raise SystemExit(res.stderr[-2000:])
        base, peak, parse_s, bodies_s, n = res.stdout.split()
        over = (int(peak) - int(base)) * 1024
    ratio = over / size
    print("| changes | plan JSON | peak RSS above baseline | ratio | target | parse | record bodies |")
    print("|---:|---:|---:|---:|---:|---:|---:|")
    print(f"| {args.changes:,} | {size / 1e6:.0f} MB | {over / 1e6:.0f} MB | {ratio:.2f}x | <= 2x | "
          f"{float(parse_s):.1f} s | {float(bodies_s):.1f} s ({int(n):,}) |")
    return 0 if ratio <= 2 else 1


if __name__ == "__main__":
    sys.exit(main())
