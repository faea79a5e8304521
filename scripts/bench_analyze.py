#!/usr/bin/env python3
"""Benchmark `tfaudit analyze --format json` on generated plans of 1k, 10k and 100k changes.

    .venv/bin/python scripts/bench_analyze.py              # 1k, 10k, 100k
    .venv/bin/python scripts/bench_analyze.py --sizes 1000 --keep /tmp/plans

For each size it writes a plan in the exact shape `terraform show -json` writes (format
1.2: variables, planned_values, resource_drift, resource_changes, output_changes,
prior_state, configuration, relevant_attributes; modules nested two deep,
count and for_each instances, nested blocks, sets of objects, sensitive and unknown
values, every action kind), then measures:

- the fastest full parse of the file: json.loads and, when importable, orjson.loads, on
  the file's bytes, best of 5 each, in a fresh process with the GC off (their best case);
- `tfaudit analyze --format json FILE` as a user runs it, in a fresh process (best of 5):
  "analysis" is what the command does once its arguments are parsed (read the config,
  analyse, render the JSON to the output): the figure the time target is about; "command"
  adds the CLI framework's argument handling; "process" is the whole wall time with the
  interpreter's start. Memory is the process's peak RSS (VmHWM) and its peak just before
  the command (interpreter and imports): the plan's own cost is the difference;
- `terraform show -json` on a saved plan of the same number of `terraform_data`
  changes, where terraform is on PATH (up to 10k: planning 100k instances takes terraform
  more than 7 minutes on 2 cores).

Targets: analysis time <= 2x the fastest parse, and peak memory above the baseline < 3x
the file size. Prints a Markdown table for the README; exits 1 when a target is missed.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, TextIO

ROOT = Path(__file__).resolve().parents[1]
AWS = "registry.terraform.io/hashicorp/aws"

# --- plan generator ----------------------------------------------------------------------


def _instance_values(rng: random.Random, i: int, world: bool) -> dict[str, Any]:
    return {
        "ami": f"ami-{rng.getrandbits(64):016x}",
        "arn": f"arn:aws:ec2:us-east-1:123456789012:instance/i-{i:017x}",
        "associate_public_ip_address": rng.random() < 0.3,
        "availability_zone": rng.choice(["us-east-1a", "us-east-1b", "us-east-1c"]),
        "cpu_options": [{"amd_sev_snp": "", "core_count": 2, "threads_per_core": 2}],
        "credit_specification": [],
        "disable_api_stop": False,
        "disable_api_termination": False,
        "ebs_block_device": [
            {"delete_on_termination": True, "device_name": f"/dev/sd{c}", "encrypted": True,
             "iops": 3000, "kms_key_id": "", "snapshot_id": "", "tags": {}, "throughput": 125,
             "volume_size": rng.choice([8, 16, 32, 100]), "volume_type": "gp3"}
            for c in "fg"[: rng.randint(0, 2)]
        ],
        "ebs_optimized": True,
        "id": f"i-{i:017x}",
        "instance_type": rng.choice(["t3.micro", "t3.small", "m5.large", "c6g.xlarge"]),
        "metadata_options": [{"http_endpoint": "enabled", "http_put_response_hop_limit": 1,
                              "http_tokens": "required", "instance_metadata_tags": "disabled"}],
        "monitoring": False,
        "private_ip": f"10.{i % 250}.{(i // 250) % 250}.{i % 7 + 10}",
        "root_block_device": [{"delete_on_termination": True, "encrypted": True, "iops": 3000,
                               "volume_size": 20, "volume_type": "gp3", "tags": {"Name": f"root-{i}"}}],
        "subnet_id": f"subnet-{rng.getrandbits(32):08x}",
        "tags": {"Name": f"app-{i}", "env": rng.choice(["dev", "stage", "prod"]), "team": "platform"},
        "tags_all": {"Name": f"app-{i}", "env": "prod", "team": "platform", "managed-by": "terraform"},
        "user_data": None,
        "vpc_security_group_ids": [f"sg-{rng.getrandbits(32):08x}"],
        "_world": world,
    }


def _sg_values(rng: random.Random, i: int, world: bool) -> dict[str, Any]:
    port = rng.choice([22, 443, 5432, 8080]) if world else 443
    return {
        "arn": f"arn:aws:ec2:us-east-1:123456789012:security-group/sg-{i:08x}",
        "description": "Managed by Terraform",
        "egress": [{"cidr_blocks": ["0.0.0.0/0"], "description": "", "from_port": 0, "ipv6_cidr_blocks": [],
                    "prefix_list_ids": [], "protocol": "-1", "security_groups": [], "self": False, "to_port": 0}],
        "id": f"sg-{i:08x}",
        "ingress": [{"cidr_blocks": ["0.0.0.0/0" if world else "10.0.0.0/8"], "description": "in",
                     "from_port": port, "ipv6_cidr_blocks": [], "prefix_list_ids": [], "protocol": "tcp",
                     "security_groups": [], "self": False, "to_port": port}],
        "name": f"sg-{i}",
        "revoke_rules_on_delete": False,
        "tags": {"Name": f"sg-{i}"},
        "vpc_id": f"vpc-{rng.getrandbits(32):08x}",
    }


def _data_values(rng: random.Random, i: int, world: bool) -> dict[str, Any]:
    return {"id": f"{rng.getrandbits(128):032x}",
            "input": {"gen": i % 5, "labels": {"a": str(i), "b": "x" * rng.randint(1, 20)},
                      "list": [rng.randint(0, 9) for _ in range(rng.randint(0, 5))]},
            "output": None, "triggers_replace": None}


KINDS = (("aws_instance", _instance_values), ("aws_security_group", _sg_values), ("terraform_data", _data_values))
ACTIONS = ((["create"], 50), (["update"], 20), (["delete"], 10), (["delete", "create"], 6),
           (["create", "delete"], 3), (["no-op"], 8), (["read"], 2), (["forget"], 1))


def _mask(value: Any, pick: float, rng: random.Random) -> Any:
    """A sensitivity/unknown mask in terraform's shape: objects and lists mirror value, leaves true or absent."""
    if isinstance(value, dict):
        out = {k: m for k, v in value.items() if (m := _mask(v, pick, rng)) not in (False, None)}
        return out
    if isinstance(value, list):
        return [_mask(v, pick, rng) or False for v in value] if any(isinstance(v, (dict, list)) for v in value) else []
    return True if rng.random() < pick else False


def _resources(n: int, seed: int) -> Iterator[dict[str, Any]]:
    """n resource instances spread over root, module.app["kN"] and module.app["kN"].module.net[0]."""
    rng = random.Random(seed)
    weights = [w for _, w in ACTIONS]
    per_block = 50
    for i in range(n):
        block = i // per_block
        module: str | None
        if block % 3 == 0:
            module = None
        elif block % 3 == 1:
            module = f'module.app["k{block % 40}"]'
        else:
            module = f'module.app["k{block % 40}"].module.net[0]'
        rtype, gen = KINDS[block % len(KINDS)]
        name = f"r{block}"
        index: int | str = (i % per_block) if block % 2 else f"key-{i % per_block}"
        actions = rng.choices([a for a, _ in ACTIONS], weights)[0]
        mode = "data" if actions == ["read"] else "managed"
        world = rng.random() < 0.01
        yield {"i": i, "module": module, "type": rtype, "name": name, "index": index, "mode": mode,
               "actions": actions, "gen": gen, "world": world, "block": block}


def _address(r: dict[str, Any]) -> str:
    idx = r["index"]
    local = ("data." if r["mode"] == "data" else "") + f"{r['type']}.{r['name']}"
    local += f"[{idx}]" if isinstance(idx, int) else f'["{idx}"]'
    return f"{r['module']}.{local}" if r["module"] else local


def _change(r: dict[str, Any], rng: random.Random) -> dict[str, Any]:
    before = r["gen"](rng, r["i"], False)
    after = r["gen"](rng, r["i"], r["world"])
    before.pop("_world", None)
    after.pop("_world", None)
    acts = r["actions"]
    if acts == ["create"]:
        before = None
    elif acts in (["delete"], ["forget"]):
        after = None
    elif acts == ["no-op"]:
        after = before
    unknown = _mask(after, 0.05, rng) if after is not None else False
    if acts == ["create"] and isinstance(unknown, dict):
        unknown["id"] = True
        unknown["arn"] = True
    change: dict[str, Any] = {
        "actions": acts, "before": before, "after": after, "after_unknown": unknown,
        "before_sensitive": _mask(before, 0.01, rng) if before is not None else False,
        "after_sensitive": _mask(after, 0.01, rng) if after is not None else False,
    }
    if len(acts) == 2:
        change["replace_paths"] = [["ami"]] if r["type"] == "aws_instance" else [["name"]]
    out: dict[str, Any] = {"address": _address(r)}
    if r["module"]:
        out["module_address"] = r["module"]
    out |= {"mode": r["mode"], "type": r["type"], "name": r["name"], "index": r["index"],
            "provider_name": AWS if r["type"].startswith("aws_") else "terraform.io/builtin/terraform",
            "change": change}
    if len(acts) == 2:
        out["action_reason"] = "replace_because_cannot_update"
    elif acts == ["read"]:
        out["action_reason"] = "read_because_dependency_pending"
    return out


def _module_tree(entries: list[tuple[dict[str, Any], dict[str, Any]]]) -> dict[str, Any]:
    """planned_values/prior_state module nesting: root_module {resources, child_modules}."""
    by_module: dict[str | None, list[dict[str, Any]]] = {}
    for r, values in entries:
        by_module.setdefault(r["module"], []).append({
            "address": _address(r), "mode": r["mode"], "type": r["type"], "name": r["name"], "index": r["index"],
            "provider_name": AWS if r["type"].startswith("aws_") else "terraform.io/builtin/terraform",
            "schema_version": 1, "values": values, "sensitive_values": {"tags": {}, "ebs_block_device": []}})
    root: dict[str, Any] = {"resources": by_module.pop(None, [])}
    apps: dict[str, dict[str, Any]] = {}
    for mod in sorted(m for m in by_module if m is not None):
        top = mod.split(".module.net")[0]
        app = apps.setdefault(top, {"resources": [], "address": top, "child_modules": []})
        if mod == top:
            app["resources"] = by_module[mod]
        else:
            app["child_modules"].append({"resources": by_module[mod], "address": mod})
    root["child_modules"] = list(apps.values())
    return root


def _json(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"))


def generate_plan(n: int, path: Path, seed: int = 7) -> int:
    """Write a plan with n resource changes to path (compact JSON, as terraform writes it); returns its size."""
    rng = random.Random(seed)
    planned: list[tuple[dict[str, Any], dict[str, Any]]] = []
    prior: list[tuple[dict[str, Any], dict[str, Any]]] = []
    with path.open("w", encoding="utf-8") as f:
        f.write('{"format_version":"1.2","terraform_version":"1.11.4","variables":{"region":{"value":"us-east-1"},'
                '"db_password":{"value":"not-a-real-password"}},')
        # Generate each change once; keep only what planned_values/prior_state need.
        changes_path = path.with_suffix(".changes.tmp")
        drift: list[str] = []
        with changes_path.open("w", encoding="utf-8") as cf:
            first = True
            for r in _resources(n, seed):
                ch = _change(r, rng)
                cf.write(("" if first else ",") + _json(ch))
                first = False
                c = ch["change"]
                if c["after"] is not None and r["mode"] == "managed":
                    planned.append((r, c["after"]))
                if c["before"] is not None:
                    prior.append((r, c["before"]))
                if r["i"] % 97 == 0 and c["before"] is not None and len(drift) < n // 50 + 1:
                    d = json.loads(_json(ch))
                    d["change"] = {**d["change"], "actions": ["update"], "after": c["before"],
                                   "after_unknown": {}, "after_sensitive": d["change"]["before_sensitive"]}
                    drift.append(_json(d))
        f.write('"planned_values":{"outputs":{"ids":{"sensitive":false}},"root_module":')
        f.write(_json(_module_tree(planned)))
        del planned
        f.write('},"resource_drift":[' + ",".join(drift) + '],"resource_changes":[')
        with changes_path.open(encoding="utf-8") as cf:
            shutil.copyfileobj(cf, f, 1 << 20)
        changes_path.unlink()
        f.write('],"output_changes":{"ids":{"actions":["update"],"before":["a"],"after":["a","b"],'
                '"after_unknown":false,"before_sensitive":false,"after_sensitive":false}},')
        f.write('"prior_state":{"format_version":"1.0","terraform_version":"1.11.4","values":{"outputs":{},'
                '"root_module":' + _json(_module_tree(prior)) + '}},')
        del prior
        blocks = {}
        for r in _resources(n, seed):
            blocks.setdefault((r["module"], r["type"], r["name"]), r)
        conf_resources = [
            {"address": f"{r['type']}.{r['name']}", "mode": r["mode"], "type": r["type"], "name": r["name"],
             "provider_config_key": "aws" if r["type"].startswith("aws_") else "terraform",
             "expressions": {"tags": {"references": ["local.tags"]}, "instance_type": {"constant_value": "t3.micro"}},
             "schema_version": 1, ("count_expression" if isinstance(r["index"], int) else "for_each_expression"):
                 {"references": ["var.instances"]}}
            for r in blocks.values()
        ]
        f.write('"configuration":{"provider_config":{"aws":{"name":"aws","full_name":"' + AWS + '",'
                '"version_constraint":"5.100.0","expressions":{"region":{"references":["var.region"]}}}},'
                '"root_module":{"resources":' + _json(conf_resources) + ','
                '"module_calls":{"app":{"source":"./modules/app","for_each_expression":{"references":["var.apps"]},'
                '"module":{"resources":[],"module_calls":{"net":{"source":"./modules/net","count_expression":'
                '{"constant_value":1},"module":{"resources":[]}}}}}},'
                '"variables":{"region":{"default":"us-east-1"},"db_password":{"sensitive":true}}}},')
        f.write('"relevant_attributes":[{"resource":"aws_instance.r1","attribute":["id"]}],'
                '"timestamp":"2026-11-26T02:21:35Z","applyable":true,"complete":true,"errored":false}')
    return path.stat().st_size


# --- measuring ------------------------------------------------------------------------------

_CHILD = r"""
import io, json, os, sys, tempfile, time
from pathlib import Path
from tfaudit.cli.app import main

def hwm_kb():
    # this process's own peak RSS (VmHWM); ru_maxrss would include the parent's from before exec
    with open("/proc/self/status") as f:
        return int(next(line for line in f if line.startswith("VmHWM:")).split()[1])

def analysis(plan, out):
    # what `tfaudit analyze --format json PLAN` does once its arguments are parsed
    from tfaudit.analysis import analyse_input
    from tfaudit.analysis.engine import Analyzer
    from tfaudit.analysis.policy import Policy
    from tfaudit.analysis.formats import OutputFormat, render
    from tfaudit.config import load_config
    policy = Policy.from_config(load_config(None, Path.cwd()))
    analyzer = Analyzer(policy)
    report = analyse_input(plan, analyzer, env=os.environ)
    render(OutputFormat.JSON, report, out, fail_on=None, rules=analyzer.info)
    out.flush()

# Warm up on a one-change plan first: the CLI framework imports parts of itself lazily on
# the first command, which is start-up cost, not the plan's. The baseline is taken after.
tiny = os.path.join(tempfile.mkdtemp(), "tiny.json")
with open(tiny, "w") as f:
    json.dump({"format_version": "1.2", "resource_changes": [{"address": "a.b", "mode": "managed", "type": "a",
               "name": "b", "provider_name": "p", "change": {"actions": ["delete"], "before": {}, "after": None}}]}, f)
real, sys.stdout = sys.stdout, io.StringIO()
main(["analyze", "--format", "json", tiny])
sys.stdout = real
base = hwm_kb()
t0 = time.perf_counter()
rc = main(["analyze", "--format", "json", sys.argv[1]])
sys.stdout.flush()
t1 = time.perf_counter()
peak = hwm_kb()
with open(os.devnull, "w") as null:
    t2 = time.perf_counter()
    analysis(sys.argv[1], null)
    t3 = time.perf_counter()
sys.stderr.write(f"BENCH {base} {peak} {t1 - t0} {t3 - t2}\n")
sys.exit(rc)
"""


_PARSE_CHILD = r"""
import gc, json, sys, time
data = open(sys.argv[1], "rb").read()
parsers = [("json", json.loads)]
try:
    import orjson
    parsers.append(("orjson", orjson.loads))
except ImportError:
    pass
gc.disable()  # the fastest way to parse: no collector passes over millions of new containers
for name, loads in parsers:
    best = None
    for _ in range(5):
        t0 = time.perf_counter()
        doc = loads(data)
        dt = time.perf_counter() - t0
        del doc
        best = dt if best is None else min(best, dt)
    print(name, best)
"""


def fastest_parse(path: Path) -> tuple[str, float, dict[str, float]]:
    """Best of 5 per available parser (json, orjson), each in a fresh process with the GC off."""
    res = subprocess.run([sys.executable, "-c", _PARSE_CHILD, str(path)], capture_output=True, text=True, check=True)
    times = {name: float(t) for name, t in (line.split() for line in res.stdout.splitlines())}
    name = min(times, key=lambda k: times[k])
    return name, times[name], times


def run_analyze(path: Path, out: TextIO, repeat: int = 5) -> dict[str, float]:
    runs = []
    for _ in range(repeat):
        out.seek(0)
        out.truncate()
        runs.append(_run_analyze_once(path, out))
    best = min(runs, key=lambda m: m["inproc"])
    return {**best, "peak_kb": max(m["peak_kb"] for m in runs), "base_kb": min(m["base_kb"] for m in runs)}


def _run_analyze_once(path: Path, out: TextIO) -> dict[str, float]:
    t0 = time.perf_counter()
    res = subprocess.run([sys.executable, "-c", _CHILD, str(path)], stdout=out, stderr=subprocess.PIPE,
                         text=True, cwd=ROOT, check=False)
    wall = time.perf_counter() - t0
    line = next((ln for ln in res.stderr.splitlines() if ln.startswith("BENCH ")), None)
    if res.returncode not in (0, 5) or line is None:
        raise SystemExit(f"analyze failed ({res.returncode}): {res.stderr[-2000:]}")
    _, base, peak, command, core = line.split()
    return {"wall": wall, "command": float(command), "inproc": float(core), "base_kb": float(base), "peak_kb": float(peak)}


def terraform_show(n: int, tmp: Path) -> float | None:
    tf = shutil.which("terraform")
    if tf is None or n > 10_000:
        return None
    work = tmp / f"tf{n}"
    work.mkdir()
    (work / "main.tf").write_text(
        'variable "n" { type = number }\n'
        'module "m" {\n  source = "./m"\n  for_each = toset(["a", "b"])\n  n = var.n\n}\n')
    (work / "m").mkdir()
    (work / "m" / "main.tf").write_text(
        'variable "n" { type = number }\n'
        'resource "terraform_data" "x" {\n  count = var.n\n'
        '  input = { i = count.index, tags = { env = "prod", n = tostring(count.index) }, l = [1, 2, 3] }\n}\n')
    env = {**os.environ, "TF_IN_AUTOMATION": "1", "CHECKPOINT_DISABLE": "1", "TF_CLI_CONFIG_FILE": os.devnull}
    subprocess.run([tf, "init", "-input=false"], cwd=work, env=env, check=True, capture_output=True)
    subprocess.run([tf, "plan", "-input=false", "-out=p.tfplan", f"-var=n={n // 2}"], cwd=work, env=env,
                   check=True, capture_output=True)
    t0 = time.perf_counter()
    subprocess.run([tf, "show", "-json", "p.tfplan"], cwd=work, env=env, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - t0


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = ""
    try:
        kb = int(Path("/proc/meminfo").read_text().split()[1])
        mem = f", {kb / 1024 / 1024:.0f} GiB RAM"
    except (OSError, ValueError, IndexError):
        pass
    return f"{cpu}, {os.cpu_count()} cores{mem}, Python {platform.python_version()}, {platform.system()}"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", default="1000,10000,100000")
    ap.add_argument("--keep", type=Path, help="keep the generated plans in this directory")
    ap.add_argument("--no-terraform", action="store_true", help="skip the terraform show -json comparison")
    args = ap.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    rows = []
    ok = True
    with tempfile.TemporaryDirectory(prefix="tfaudit-bench-") as tmpd:
        tmp = Path(tmpd)
        where = args.keep or tmp
        where.mkdir(parents=True, exist_ok=True)
        for n in sizes:
            path = where / f"plan-{n}.json"
            size = generate_plan(n, path)
            parser, parse_s, all_parses = fastest_parse(path)
            with (tmp / "out.json").open("w+") as out:
                m = run_analyze(path, out)
            findings = len(json.loads((tmp / "out.json").read_text())["findings"])
            tf_s = None if args.no_terraform else terraform_show(n, tmp)
            mem_over = (m["peak_kb"] - m["base_kb"]) * 1024
            ratio_t = m["inproc"] / parse_s
            ratio_m = mem_over / size
            ok = ok and ratio_t <= 2 and ratio_m < 3
            rows.append((n, size, all_parses, parser, m, ratio_t, mem_over, ratio_m, findings, tf_s))
            print(f"{n}: {size / 1e6:.1f} MB, parse {all_parses}, analysis {m['inproc']:.3f}s = {ratio_t:.2f}x, "
                  f"command {m['command']:.3f}s, process {m['wall']:.3f}s, mem +{mem_over / 1e6:.1f} MB = "
                  f"{ratio_m:.2f}x file, peak RSS {m['peak_kb'] / 1024:.0f} MB, {findings} findings"
                  + (f", terraform show -json {tf_s:.2f}s" if tf_s is not None else ""), file=sys.stderr)
    print(f"Machine: {machine()}\n")
    print("| changes | plan JSON | json.loads | orjson.loads | analysis | vs fastest parse | command / process | "
          "peak RSS (above baseline) | memory / file | findings | `terraform show -json` |")
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for n, size, parses, parser, m, ratio_t, mem_over, ratio_m, findings, tf_s in rows:
        orj = f"{parses['orjson']:.3f} s" if "orjson" in parses else "not installed"
        print(f"| {n:,} | {size / 1e6:.1f} MB | {parses['json']:.3f} s | {orj} | {m['inproc']:.3f} s | "
              f"{ratio_t:.2f}x ({parser}) | {m['command']:.3f} s / {m['wall']:.2f} s | "
              f"{m['peak_kb'] / 1024:.0f} MB ({mem_over / 1e6:.1f} MB) | {ratio_m:.2f}x | {findings:,} | "
              + (f"{tf_s:.2f} s |" if tf_s is not None else "n/a |"))
    print("\ntargets met" if ok else "\nTARGETS MISSED", file=sys.stderr)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
