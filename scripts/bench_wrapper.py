#!/usr/bin/env python3
"""What `tfaudit apply` costs on top of `terraform apply`, and where the time goes.

    .venv/bin/python scripts/bench_wrapper.py                    # 1,000 resources: create, and no change
    .venv/bin/python scripts/bench_wrapper.py --sizes 1000 5000 --repeat 3
    .venv/bin/python scripts/bench_wrapper.py --phases-only      # the phase profile alone
    .venv/bin/python scripts/bench_wrapper.py --sizes 5000 --repeat 1 --no-change-sizes --no-phases

One terraform config of N `terraform_data` resources (no provider needed), initialised
once. Each measured run starts from a fresh copy of it, so both tools see the same state:

- create: an empty state, N resources to create;
- no change: the N resources already applied by an earlier `tfaudit apply` (so the ledger
  has its records and the out-of-band check has something to compare), nothing to do.

`terraform apply -auto-approve` (the anchor) and `tfaudit apply -auto-approve` (the figure)
alternate, `--repeat` times each, as separate processes with the same environment
(local ledger, Ed25519 key, no sinks); the table shows the median of each and their ratio.

Then one more `tfaudit apply` runs in a child process with every phase timed (the
functions named in PHASES wrapped with a clock, wherever they were imported): session
(config, binary, key, identity), reading the state, the out-of-band check, plan, reading the
plan, gates, apply, building records, signing, appending, delivery and anchoring, with
the interpreter's start and imports. A phase whose function no longer exists is left out.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TFAUDIT = [sys.executable, "-m", "tfaudit"]

CONFIG = """
variable "n" { type = number }
variable "gen" {
  type    = number
  default = 1
}
resource "terraform_data" "r" {
  count = var.n
  input = { i = count.index, gen = var.gen, tags = { env = "prod", team = "platform" } }
}
output "count" { value = length(terraform_data.r) }
"""

# (phase, "module:attribute[.method]"): each is timed, inclusive, wherever it is called from.
# Terraform's own processes are timed by their first argument (plan, show, apply, state, version).
PHASES: tuple[tuple[str, str], ...] = (
    ("session: config, binary, key, identity", "tfaudit.run.apply:open_session"),
    ("session: config, binary, key, identity", "tfaudit.run.session:open_session"),
    ("  identity (git, CI)", "tfaudit.identity.actor:collect_actor"),
    ("read the state: parse", "tfaudit.parse.state:parse_state"),
    ("out-of-band check", "tfaudit.run.state:record_out_of_band"),
    ("out-of-band check", "tfaudit.run.outofband:record_out_of_band"),
    ("read the plan: parse", "tfaudit.parse.plan:parse_plan"),
    ("read the plan: sha256", "tfaudit.terraform.binary:sha256_file"),
    ("gates: risk rules", "tfaudit.run.risk:analyse_run"),
    ("gates: risk rules", "tfaudit.run.gates:analyse_run"),
    ("gates: plan binding, identity", "tfaudit.run.apply:_check_binding_and_identity"),
    ("gates: plan binding, identity", "tfaudit.run.gates:check_binding_and_identity"),
    ("records: build", "tfaudit.records:base_record"),
    ("records: redact resource bodies", "tfaudit.records:resource_body"),
    ("ledger: append (signing included)", "tfaudit.trail.ledger:Ledger.append"),
    ("  signing", "tfaudit.trail.signing:Ed25519Signer.sign"),
    ("  signing (batch)", "tfaudit.trail.signing:Ed25519Signer.sign_many"),
    ("delivery", "tfaudit.sinks.delivery:deliver_after_run"),
    ("anchoring", "tfaudit.trail.checkpoints:anchor_after_run"),
)

_PROFILE_CHILD = r"""
import importlib, json, sys, time, types
t_start = time.perf_counter(); wall_start = time.time()
phases = json.loads(sys.argv[1]); out = sys.argv[2]
totals = {}
spans = []  # (what, wall start, wall end): terraform processes and the apply step, for the timeline
def span(what, t0, t1):
    spans.append((what, wall_start + t0 - t_start, wall_start + t1 - t_start))
def add(label, dt):
    n, s = totals.get(label, (0, 0.0)); totals[label] = (n + 1, s + dt)
def clocked(label, fn):
    def wrapper(*a, **k):
        t0 = time.perf_counter()
        try:
            return fn(*a, **k)
        finally:
            add(label, time.perf_counter() - t0)
    wrapper.__wrapped__ = fn
    return wrapper
from tfaudit.cli.app import main
import tfaudit.terraform.proc as proc
t_imported = time.perf_counter()
# every terraform process, named by its subcommand
for name in ("run", "run_streaming", "run_journaled"):
    fn = getattr(proc, name, None)
    if fn is None:
        continue
    def tf(*a, _fn=fn, **k):
        argv = a[0] if a else k.get("argv", [])
        sub = next((x for x in argv[1:] if not x.startswith("-")), "?")
        prog = str(argv[0]).rsplit("/", 1)[-1] if argv else "?"
        t0 = time.perf_counter()
        try:
            return _fn(*a, **k)
        finally:
            t1 = time.perf_counter()
            add(f"{'terraform' if prog in ('terraform', 'tofu') else prog} {sub}", t1 - t0)
            span(sub, t0, t1)
    setattr(proc, name, tf)
import tfaudit.run.apply as _apply
_stream = _apply._stream_apply
def _timed_stream(*a, **k):
    t0 = time.perf_counter()
    try:
        return _stream(*a, **k)
    finally:
        span("apply step", t0, time.perf_counter())
_apply._stream_apply = _timed_stream
for label, target in phases:
    mod_name, attr = target.split(":")
    try:
        mod = importlib.import_module(mod_name)
    except ImportError:
        continue
    owner, _, meth = attr.rpartition(".")
    holder = getattr(mod, owner, None) if owner else mod
    fn = getattr(holder, meth, None) if holder is not None else None
    if fn is None:
        continue
    wrapped = clocked(label, fn)
    setattr(holder, meth, wrapped)
    if not owner:  # also where it was imported by name
        for m in list(sys.modules.values()):
            if isinstance(m, types.ModuleType) and m.__name__.startswith("tfaudit") and getattr(m, meth, None) is fn:
                setattr(m, meth, wrapped)
t0 = time.perf_counter()
rc = main(["apply", "-auto-approve"])
t1 = time.perf_counter()
json.dump({"rc": rc, "imports": t_imported - t_start, "main": t1 - t0, "phases": totals, "spans": spans,
           "end_wall": wall_start + t1 - t_start}, open(out, "w"))
"""


def tf_env(home: Path, rc_file: Path) -> dict[str, str]:
    keep = {k: v for k, v in os.environ.items() if k in ("PATH", "LANG", "LC_ALL", "TMPDIR")}
    return {**keep, "HOME": str(home), "TF_IN_AUTOMATION": "1", "CHECKPOINT_DISABLE": "1",
            "TF_CLI_CONFIG_FILE": str(rc_file), "TFAUDIT_SIGNING_KEY": str(home / "key"),
            "TFAUDIT_LOG_FORMAT": "json", "USER": "bench", "PYTHONPATH": str(ROOT)}


def run(argv: list[str], cwd: Path, env: dict[str, str]) -> float:
    t0 = time.perf_counter()
    res = subprocess.run(argv, cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                         stdin=subprocess.DEVNULL)
    dt = time.perf_counter() - t0
    if res.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} failed ({res.returncode}) in {cwd}: {res.stderr.decode()[-2000:]}")
    return dt


class Bench:
    def __init__(self, tmp: Path, n: int) -> None:
        self.tmp, self.n = tmp, n
        self.tf = shutil.which("terraform") or sys.exit("terraform is not on PATH")
        home = tmp / "home"
        home.mkdir(exist_ok=True)
        rc_file = tmp / "terraformrc"
        rc_file.write_text("")
        self.env = tf_env(home, rc_file)
        if not (home / "key").exists():
            subprocess.run([*TFAUDIT, "keygen", str(home / "key")], env=self.env, check=True, capture_output=True)
        self.base = tmp / f"base-{n}"
        self.base.mkdir()
        (self.base / "main.tf").write_text(CONFIG)
        (self.base / "terraform.tfvars").write_text(f"n = {n}\n")
        subprocess.run([self.tf, "init", "-input=false"], cwd=self.base, env=self.env, check=True, capture_output=True)
        self.applied: Path | None = None  # made when a no-change case needs it (at 5,000 it takes minutes)
        self.copies = 0

    def fresh(self, applied: bool) -> Path:
        if applied and self.applied is None:
            self.applied = self.tmp / f"applied-{self.n}"
            shutil.copytree(self.base, self.applied, symlinks=True)
            run([*TFAUDIT, "apply", "-auto-approve"], self.applied, self.env)
        self.copies += 1
        dest = self.tmp / f"w{self.n}-{self.copies}"
        shutil.copytree(self.applied if applied and self.applied else self.base, dest, symlinks=True)
        return dest

    def compare(self, applied: bool, repeat: int) -> tuple[list[float], list[float]]:
        plain: list[float] = []
        wrapped: list[float] = []
        for _ in range(repeat):
            plain.append(run([self.tf, "apply", "-auto-approve", "-input=false"], self.fresh(applied), self.env))
            wrapped.append(run([*TFAUDIT, "apply", "-auto-approve", "-input=false"], self.fresh(applied), self.env))
        return plain, wrapped

    def phases(self, applied: bool) -> dict[str, object]:
        out = self.tmp / f"phases-{self.copies}.json"
        t0, w0 = time.perf_counter(), time.time()
        run([sys.executable, "-c", _PROFILE_CHILD, json.dumps(PHASES), str(out)], self.fresh(applied), self.env)
        wall, w1 = time.perf_counter() - t0, time.time()
        data: dict[str, object] = json.loads(out.read_text())
        data["wall"] = wall
        data["timeline"] = tfaudit_timeline(data, w0, w1)
        data["anchor_timeline"] = self.anchor_timeline(applied)
        return data

    def anchor_timeline(self, applied: bool) -> dict[str, float]:
        """`terraform apply -auto-approve -json`, its time split by its own events' timestamps."""
        w0 = time.time()
        res = subprocess.run([self.tf, "apply", "-auto-approve", "-input=false", "-json"], cwd=self.fresh(applied),
                             env=self.env, capture_output=True, stdin=subprocess.DEVNULL)
        w1 = time.time()
        if res.returncode != 0:
            raise SystemExit(f"terraform apply -json failed: {res.stderr.decode()[-2000:]}")
        stamps: dict[str, float] = {}
        for line in res.stdout.splitlines():
            ev = json.loads(line)
            when = datetime.fromisoformat(ev["@timestamp"].replace("Z", "+00:00")).timestamp()
            if ev["type"] == "version":
                stamps.setdefault("version", when)
            elif ev["type"] == "change_summary":
                stamps.setdefault(ev["changes"]["operation"], when)
        v, p, a = stamps["version"], stamps["plan"], stamps["apply"]
        return {"start": v - w0, "plan": p - v, "read the plan, gates, intent record": 0.0, "apply": a - p,
                "closing": w1 - a, "total": w1 - w0}


TIMELINE = ("start", "plan", "read the plan, gates, intent record", "apply", "closing", "total")
TIMELINE_NOTES = {
    "start": "interpreter, imports, session, state before, out-of-band check | process start, config",
    "plan": "`terraform plan -out` | planning inside `terraform apply` (refresh included)",
    "read the plan, gates, intent record": "`terraform show -json`, parsing, gates, journal, `run.started` | none",
    "apply": "`terraform apply PLANFILE` (or nothing to apply) | applying",
    "closing": "state after, records, signing, ledger, delivery, anchoring | state, outputs, exit",
}


def tfaudit_timeline(data: dict[str, object], w0: float, w1: float) -> dict[str, float]:
    """tfaudit's run cut at its terraform plan and its apply step (wall clock, as the user waits)."""
    spans: list[list[object]] = data["spans"]  # type: ignore[assignment]
    plan = next(s for s in spans if s[0] == "plan")
    step = next(s for s in spans if s[0] == "apply step")
    p0, p1, a0, a1 = float(plan[1]), float(plan[2]), float(step[1]), float(step[2])  # type: ignore[arg-type]
    return {"start": p0 - w0, "plan": p1 - p0, "read the plan, gates, intent record": a0 - p1, "apply": a1 - a0,
            "closing": w1 - a1, "total": w1 - w0}


def print_timeline(title: str, data: dict[str, object]) -> None:
    ours: dict[str, float] = data["timeline"]  # type: ignore[assignment]
    theirs: dict[str, float] = data["anchor_timeline"]  # type: ignore[assignment]
    print(f"\n{title}: phase by phase, one `tfaudit apply` beside one `terraform apply -json` (wall clock)")
    print("| phase | tfaudit | terraform | ratio | tfaudit does | terraform does |\n|---|---:|---:|---:|---|---|")
    for name in TIMELINE:
        a, b = ours[name], theirs[name]
        ratio = f"{a / b:.2f}" if b > 0.0005 else ""
        print(f"| {name} | {a:.3f} s | {b:.3f} s | {ratio} | {TIMELINE_NOTES.get(name, '|')} |")


def print_phases(title: str, data: dict[str, object]) -> None:
    phases: dict[str, list[float]] = data["phases"]  # type: ignore[assignment]
    wall, imports, main = float(data["wall"]), float(data["imports"]), float(data["main"])  # type: ignore[arg-type]
    print(f"\n{title}: where `tfaudit apply` spends its {wall:.2f} s (inclusive times; indented = part of the line above)")
    print("| phase | calls | seconds | share |\n|---|---:|---:|---:|")
    print(f"| interpreter start and imports | 1 | {wall - main:.3f} | {(wall - main) / wall:.0%} |")
    print(f"|   of which importing tfaudit.cli.app | 1 | {imports:.3f} | {imports / wall:.0%} |")
    order = sorted(phases.items(), key=lambda kv: -kv[1][1])
    for label, (calls, secs) in order:
        print(f"| {label} | {int(calls)} | {secs:.3f} | {secs / wall:.0%} |")
    tf_total = sum(s for label, (_, s) in phases.items() if label.startswith("terraform "))
    print(f"| (all terraform processes) | | {tf_total:.3f} | {tf_total / wall:.0%} |")
    print(f"| (tfaudit's own work: the rest) | | {wall - tf_total:.3f} | {(wall - tf_total) / wall:.0%} |")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[1000])
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--phases-only", action="store_true")
    ap.add_argument("--cases", nargs="+", choices=["create", "no-change"], default=["create", "no-change"])
    ap.add_argument("--no-phases", action="store_true", help="the comparison alone (at 5,000 a profile takes minutes)")
    ap.add_argument("--no-change-sizes", type=int, nargs="*", default=None,
                    help="sizes for the no-change case (default: the same as --sizes)")
    args = ap.parse_args()
    targets = {("create", 1000): 1.03, ("create", 5000): 1.02, ("no change", 1000): 1.10}
    rows = []
    profiles = []
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="tfaudit-bench-wrapper-") as tmpd:
        for n in args.sizes:
            bench = Bench(Path(tmpd), n)
            for case, applied in (("create", False), ("no change", True)):
                if case == "no change" and args.no_change_sizes is not None and n not in args.no_change_sizes:
                    continue
                if case.replace(" ", "-") not in args.cases:
                    continue
                if not args.phases_only:
                    plain, wrapped = bench.compare(applied, args.repeat)
                    p, w = statistics.median(plain), statistics.median(wrapped)
                    rows.append((case, n, p, w, w / p, targets.get((case, n))))
                    print(f"{case} {n}: terraform {[round(x, 2) for x in plain]}, tfaudit {[round(x, 2) for x in wrapped]}",
                          file=sys.stderr)
                if not args.no_phases:
                    profiles.append((f"{case}, {n:,} resources", bench.phases(applied)))
    if rows:
        print("| case | resources | `terraform apply` | `tfaudit apply` | ratio | target |\n|---|---:|---:|---:|---:|---:|")
        for case, n, p, w, ratio, target in rows:
            print(f"| {case} | {n:,} | {p:.2f} s | {w:.2f} s | {ratio:.3f} | {f'<= {target:.2f}' if target else ''} |")
    load_after = os.getloadavg()
    print(f"\nload average (1, 5, 15 min): before {', '.join(f'{x:.2f}' for x in load_before)}; "
          f"after {', '.join(f'{x:.2f}' for x in load_after)}")
    for title, data in profiles:
        print_timeline(title, data)
        print_phases(title, data)
    missed = [r for r in rows if r[5] is not None and r[4] > r[5]]
    print("\ntargets met" if not missed else f"\nTARGETS MISSED: {len(missed)}", file=sys.stderr)
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
