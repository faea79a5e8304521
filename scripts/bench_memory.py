#!/usr/bin/env python3
"""Peak memory of tfaudit's side of `tfaudit apply` for a large plan, against the plan JSON's size.

    .venv/bin/python scripts/bench_memory.py                          # 20,000 and 100,000 changes
    .venv/bin/python scripts/bench_memory.py --changes 20000 --plans /tmp/plans

Planning 100,000 real resources takes terraform longer than a benchmark should, so this runs
tfaudit's own side of an apply, with the functions `tfaudit apply` calls (tfaudit.run.apply,
tfaudit.run.changes), on a plan in `terraform show -json`'s exact shape (scripts/bench_analyze.py's
generator) and a state after apply made from it. In a fresh process: the plan's bytes as
`Terraform.show_json` returns them go to `read_plan` (streamed, changes spooled, secrets learned),
then the analysis, the `run.started` plan body, the planned bodies into a real journal, the
`run.started` append to a real ledger (Ed25519), the state after as `terraform state pull` returns
it, parsed; then `changed_records` (outcomes against that state, one redacted `resource.changed`
record per change, made one at a time) and `run.finished`, as the file ledger's `append_each`
seals and writes them. terraform's apply stream is
left out (an empty tracker). Memory is the process's peak RSS (VmHWM) above its baseline after the
imports. Target: <= 2x the plan JSON.
"""

from __future__ import annotations

import argparse
import ast
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))
sys.path.insert(0, str(ROOT))

_CHILD = r"""
import sys, time
from pathlib import Path
from cryptography.hazmat.primitives.asymmetric import ed25519
from tfaudit import records
from tfaudit.analysis.engine import Analyzer, analyse_plan
from tfaudit.parse.events import ApplyTracker
from tfaudit.parse.state import parse_state
from tfaudit.redact import Redactor
from tfaudit.run import changes as changes_mod
from tfaudit.run.gates import run_analysis
from tfaudit.run.journal import Journal
from tfaudit.schema import RecordType
from tfaudit.trail.ledger import Ledger
from tfaudit.trail.signing import Ed25519Signer

def hwm_kb():
    with open("/proc/self/status") as f:
        return int(next(line for line in f if line.startswith("VmHWM:")).split()[1])

plan_path, state_path, work = sys.argv[1], sys.argv[2], Path(sys.argv[3])
signer = Ed25519Signer.from_private_key(ed25519.Ed25519PrivateKey.generate())
ledger = Ledger(work / "ledger.jsonl")
spool_dir = work / ".tfaudit-journal"
spool_dir.mkdir(mode=0o700)
info = records.RunInfo(id=records.RunId("0" * 32), command="apply", args=(), tool="terraform",
                       tool_version="1.11.4", workspace="default", working_dir=str(work), plan_sha256="0" * 64)
def record(rtype, **body):
    return records.base_record(rtype, info, {"user": "bench"}, **body)

base = hwm_kb()
marks = []
t0 = time.perf_counter()
def mark(what):
    marks.append((what, hwm_kb() - base, time.perf_counter() - t0))

redactor = Redactor()
data = Path(plan_path).read_bytes()          # what Terraform.show_json returns
read = changes_mod.read_plan(data, "terraform show -json", redactor, spool_dir)
del data
mark("read")
report = analyse_plan(read.plan, Analyzer()).finish()
analysis = run_analysis(report, report.gate(None), redactor.scrub)
plan_body = records.plan_body(read.plan, "0" * 64, redactor, read.changes)
journal = Journal(spool_dir, info.id)
journal.write_changes(changes_mod.planned_bodies(read.changes, redactor, analysis))
ledger.append([record(RecordType.RUN_STARTED, plan=plan_body)], signer)
del plan_body
mark("started")
state_after = parse_state(Path(state_path).read_bytes(), source="terraform state pull")
mark("state")
tracker = ApplyTracker()
counts = {"succeeded": 0, "failed": 0, "not_attempted": 0}
def closing():                                  # as tfaudit.run.apply._finish makes them
    yield from changes_mod.changed_records(record, read.changes, tracker, 0, False, state_after, redactor,
                                           analysis, counts)
    mark("records")
    yield record(RecordType.RUN_FINISHED, outcome=records.outcome_body(
        status=records.run_status(counts, 0, False), exit_code=0, counts=counts, state_before=None,
        state_after=state_after))
ledger.append_each(closing(), signer)          # what tfaudit.run.publish.append does with a file ledger
mark("appended")
journal.remove()
read.close()
print(base, repr(marks), sum(counts.values()))
"""


def generate_state(plan: Path, out: Path) -> int:
    """A v4 state holding every managed object the plan creates or keeps (its planned values,
    unknowns filled in), written one resource at a time; returns its size."""
    from tfaudit.parse.plan_stream import stream_plan

    with plan.open("rb") as f, out.open("w", encoding="utf-8") as o:
        o.write('{"version":4,"terraform_version":"1.11.4","serial":2,"lineage":"bench","outputs":{},"resources":[')
        first = [True]

        def on_change(ch: Any) -> None:
            if ch.mode != "managed" or ch.after is None:
                return
            attrs = dict(ch.after)
            unknown = ch.after_unknown if isinstance(ch.after_unknown, dict) else {}
            attrs.update({k: f"known-{k}" for k, v in unknown.items() if v is True})
            inst = {"schema_version": 0, "attributes": attrs, "sensitive_attributes": []}
            if ch.index is not None:
                inst["index_key"] = ch.index
            res = {"mode": "managed", "type": ch.type, "name": ch.name,
                   "provider": f'provider["{ch.provider}"]', "instances": [inst]}
            if ch.module:
                res["module"] = ch.module
            o.write(("" if first[0] else ",") + json.dumps(res, separators=(",", ":")))
            first[0] = False

        stream_plan(f, str(plan), on_change, lambda ch: None)
        o.write("]}")
    return out.stat().st_size


def measure(n: int, plans: Path) -> dict[str, Any]:
    from bench_analyze import generate_plan

    plan = plans / f"plan-{n}.json"
    state = plans / f"state-{n}.json"
    if not plan.exists():
        generate_plan(n, plan)
    if not state.exists():
        generate_state(plan, state)
    with tempfile.TemporaryDirectory(prefix="tfaudit-bench-memory-") as work:
        res = subprocess.run([sys.executable, "-c", _CHILD, str(plan), str(state), work], capture_output=True,
                             text=True, cwd=ROOT)
    if res.returncode != 0:
        raise SystemExit(res.stderr[-3000:])
    _, rest = res.stdout.strip().split(" ", 1)
    marks_text, _, records = rest.rpartition(" ")
    marks = ast.literal_eval(marks_text)  # [(phase, peak KiB above baseline so far, seconds), ...]
    return {"n": n, "plan": plan.stat().st_size, "state": state.stat().st_size, "marks": marks,
            "records": int(records), "peak": marks[-1][1] * 1024}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--changes", type=int, action="append", help="plan sizes (default: 20000 and 100000)")
    ap.add_argument("--plans", type=Path, help="keep (or reuse) the generated plans and states here")
    args = ap.parse_args()
    sizes = args.changes or [20_000, 100_000]
    print(f"load average: {', '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print("| changes | plan JSON (anchor) | state JSON | peak RSS above baseline | ratio | target | "
          "peak after: read / run.started / state / records / append | time |")
    print("|---:|---:|---:|---:|---:|---:|---|---:|")
    worst = 0.0
    with tempfile.TemporaryDirectory(prefix="tfaudit-bench-plans-") as tmp:
        plans = args.plans or Path(tmp)
        plans.mkdir(parents=True, exist_ok=True)
        for n in sizes:
            r = measure(n, plans)
            ratio = r["peak"] / r["plan"]
            worst = max(worst, ratio)
            steps = " / ".join(f"{kb * 1024 / 1e6:.0f}" for _, kb, _ in r["marks"])
            print(f"| {n:,} | {r['plan'] / 1e6:.0f} MB | {r['state'] / 1e6:.0f} MB | {r['peak'] / 1e6:.0f} MB | "
                  f"{ratio:.2f}x | <= 2x | {steps} MB | {r['marks'][-1][2]:.1f} s ({r['records']:,} records) |")
    print(f"load average: {', '.join(f'{x:.2f}' for x in os.getloadavg())}")
    return 0 if worst <= 2 else 1


if __name__ == "__main__":
    sys.exit(main())
