#!/usr/bin/env python3
"""Start-up: `tfaudit --help` and small commands against the bare interpreter's start.

    .venv/bin/python scripts/bench_startup.py            # best of 15 each
    .venv/bin/python scripts/bench_startup.py --runs 30

Each command runs as a user starts it (the `tfaudit` entry point of this venv), stdout to
/dev/null; the figure is the best wall time of --runs (the least disturbed by other load),
next to `python -c pass` and `python -c "import typer"` measured the same way in the same
run. Target: `tfaudit --help` <= 0.12 s. `python -X importtime -m tfaudit --help` shows
what is left; tests/cli/test_import_budget.py keeps heavy modules out of each command.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BIN = Path(sys.executable).parent


def best(argv: list[str], runs: int) -> float:
    out = 1e9
    for _ in range(runs):
        t0 = time.perf_counter()
        subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)
        out = min(out, time.perf_counter() - t0)
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=15)
    args = ap.parse_args()
    tfaudit = str(BIN / "tfaudit")
    with tempfile.TemporaryDirectory() as tmp:
        plan = Path(tmp) / "plan.json"
        plan.write_text(json.dumps({"format_version": "1.2", "resource_changes": [
            {"address": "a.b", "mode": "managed", "type": "a", "name": "b", "provider_name": "p",
             "change": {"actions": ["delete"], "before": {}, "after": None}}]}))
        py = best([sys.executable, "-c", "pass"], args.runs)
        typer = best([sys.executable, "-c", "import typer"], args.runs)
        rows = [(label, best(argv, args.runs)) for label, argv in (
            ("tfaudit --help", [tfaudit, "--help"]),
            ("tfaudit apply --help", [tfaudit, "apply", "--help"]),
            ("tfaudit analyze (one-change plan)", [tfaudit, "analyze", "--format", "json", str(plan)]),
        )]
    print(f"python -c pass: {py:.3f} s; python -c 'import typer': {typer:.3f} s (best of {args.runs})\n")
    print("| command | seconds | python start | ratio | target |\n|---|---:|---:|---:|---:|")
    for label, t in rows:
        target = "<= 0.12 s" if label == "tfaudit --help" else ""
        print(f"| {label} | {t:.3f} | {py:.3f} | {t / py:.1f}x | {target} |")
    return 0 if rows[0][1] <= 0.12 else 1


if __name__ == "__main__":
    sys.exit(main())
