#!/usr/bin/env python3
"""What deciding outcomes costs: phases from the apply stream, checked against the state after,
and the resource.changed bodies with the real after-values, for N replaced resources.

    .venv/bin/python scripts/bench_outcomes.py                 # 1,000 and 10,000 resources
    .venv/bin/python scripts/bench_outcomes.py --sizes 50000

The inputs are shaped as terraform 1.11 writes them (a replace's four hook messages per
resource, a v4 state whose `triggers_replace` is stored dynamically typed) and built in memory,
so only tfaudit's own work is timed: `run.outcomes.resolve` and `records.resource_body`.
"""

from __future__ import annotations

import argparse
import json
import time

from tfaudit import records
from tfaudit.parse.events import ApplyTracker, event_from_message
from tfaudit.parse.plan import ResourceChange, resource_change_from_json
from tfaudit.parse.state import State, parse_state
from tfaudit.redact import Redactor
from tfaudit.run.outcomes import resolve


def inputs(n: int) -> tuple[list[ResourceChange], ApplyTracker, State]:
    changes = [resource_change_from_json({
        "address": f"terraform_data.m[{i}]", "mode": "managed", "type": "terraform_data", "name": "m", "index": i,
        "provider_name": "terraform.io/builtin/terraform",
        "change": {"actions": ["delete", "create"], "before": {"id": f"old{i}", "triggers_replace": [1]},
                   "after": {"triggers_replace": [2]}, "after_unknown": {"id": True, "output": True},
                   "before_sensitive": {}, "after_sensitive": {}}}, "bench") for i in range(n)]
    messages = []
    for i in range(n):
        addr = {"addr": f"terraform_data.m[{i}]"}
        for kind, action in (("apply_start", "delete"), ("apply_complete", "delete"),
                             ("apply_start", "create"), ("apply_complete", "create")):
            messages.append({"type": kind, "hook": {"resource": addr, "action": action, "id_key": "id",
                                                    "id_value": f"new{i}", "elapsed_seconds": 0}})
    tracker = ApplyTracker(event_from_message(m) for m in messages)
    state = parse_state(json.dumps({"version": 4, "serial": 2, "lineage": "bench", "resources": [{
        "mode": "managed", "type": "terraform_data", "name": "m", "provider": "p",
        "instances": [{"index_key": i, "attributes": {
            "id": f"new{i}", "input": None, "output": None,
            "triggers_replace": {"value": [2], "type": ["tuple", ["number"]]}}} for i in range(n)]}]}))
    assert state is not None
    return changes, tracker, state


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[1000, 10000])
    args = ap.parse_args()
    print(f"{'resources':>10}  {'resolve':>9}  {'bodies':>9}  {'per 1,000':>10}")
    for n in args.sizes:
        changes, tracker, state = inputs(n)
        t0 = time.perf_counter()
        outcomes = resolve(changes, tracker, exit_code=0, interrupted=False, state_after=state)
        t1 = time.perf_counter()
        redactor = Redactor()
        bodies = [records.resource_body(ch, o, redactor) for ch, o in zip(changes, outcomes)]
        t2 = time.perf_counter()
        assert all(b["status"] == "succeeded" and b["after"]["id"].startswith("new") for b in bodies)
        print(f"{n:>10,}  {t1 - t0:>8.2f}s  {t2 - t1:>8.2f}s  {(t2 - t0) * 1000 / n:>9.3f}s")


if __name__ == "__main__":
    main()
