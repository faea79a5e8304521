#!/usr/bin/env python3
"""Benchmark checkpoints and proofs on ledgers of 1k to 1M records.

    .venv/bin/python scripts/bench_checkpoints.py              # 1k, 10k, 100k, 1M
    .venv/bin/python scripts/bench_checkpoints.py --sizes 1000

For each size it writes a ledger of chained records (each a resource.changed record of about
1.3 kB, as a terraform_data change makes; up to 100k all really signed, above that copies of
one signed record with their chain rewritten, since anchoring hashes bytes and checks no
signature), then measures, best of 3:

- anchor after a run (the figure): what every wrapped run adds when checkpoints are configured,
  after a run of 10 records appended through the store (signed): the previous checkpoint and
  the Merkle tree's right edge are read, the 10 new lines hashed, the new checkpoint signed
  and written to a directory with its consistency proof. Its anchor: 0.1 s at 1M records.
- full re-hash (what anchoring cost before the frontier, and still costs the first time or
  when the saved edge no longer fits): read and hash every line;
- verify --checkpoints: check the ledger against 100 checkpoints in a directory (<= 100k);
- prove inclusion: `tfaudit prove inclusion` of the middle record as a user runs it
  (a fresh process, imports included), and verify-proof of its output (<= 100k).

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


def fast_ledger(path: Path, n: int, signer: object) -> None:
    """n chained lines: copies of one signed record with chain.seq/prev rewritten (hashing only)."""
    import hashlib
    import re

    one = path.with_name(path.name + ".one")
    make_ledger(one, 1, signer)
    template = one.read_bytes().rstrip(b"\n")
    one.unlink()
    m = re.search(rb'"chain":\{"prev":null,"seq":1\}', template)
    assert m, "canonical chain field not found"
    pre, post = template[:m.start()], template[m.end():]
    prev = b"null"
    with path.open("wb") as f:
        chunk = []
        for i in range(1, n + 1):
            line = pre + b'"chain":{"prev":' + prev + b',"seq":' + str(i).encode() + b"}" + post
            prev = b'"sha256:' + hashlib.sha256(line).hexdigest().encode() + b'"'
            chunk.append(line + b"\n")
            if len(chunk) == 10_000:
                f.write(b"".join(chunk))
                chunk = []
        f.write(b"".join(chunk))


def append_run(ledger: Path, signer: object, k: int = 10) -> None:
    """k signed resource.changed records appended through the store, as a run does."""
    tmp = ledger.with_name(ledger.name + ".run")
    make_ledger(tmp, k, signer)
    recs = [__import__("json").loads(line) for line in tmp.read_bytes().splitlines()]
    tmp.unlink()
    Ledger(ledger).append(recs, signer)  # type: ignore[arg-type]


def best(fn, repeat: int = 3) -> float:  # type: ignore[no-untyped-def]
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", type=int, nargs="*", default=[1000, 10_000, 100_000, 1_000_000])
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
            (make_ledger if n <= 100_000 else fast_ledger)(ledger, n - 10, signer)
            settings = cps.CheckpointSettings(location=str(tmp / f"anchor-{n}"))
            t_full = best(lambda: cps.anchor(ledger, signer, settings, {}) and None, repeat=1)  # no edge saved yet

            def run_then_anchor() -> float:
                append_run(ledger, signer)
                t0 = time.perf_counter()
                cp = cps.anchor(ledger, signer, settings, {}).checkpoint
                took = time.perf_counter() - t0
                assert cp is not None and cp.size == len(cps.read_lines(ledger)) if n <= 100_000 else True
                return took

            t_anchor = min(run_then_anchor() for _ in range(3))
            size = len(cps.read_lines(ledger)) if n <= 100_000 else None
            mb = ledger.stat().st_size / 1e6
            if n <= 100_000:
                t_check, t_prove, t_vp = _reads(tmp, ledger, size or n, signer, verifier, priv, pub)
            else:
                t_check = t_prove = t_vp = None
            rows.append((n, mb, t_anchor, t_full, t_check, t_prove, t_vp))
            print(f"{n} records ({mb:.1f} MB): anchor after a run {t_anchor * 1000:.1f} ms "
                  f"(target 100 ms), full re-hash {t_full * 1000:.0f} ms", file=sys.stderr)
            ledger.unlink()
    print(f"\n{platform.processor() or platform.machine()}, Python {platform.python_version()}, best of 3:\n")
    print("| records | ledger | anchor after a run of 10 | its anchor (target) | full re-hash (before; first anchor) "
          "| verify --checkpoints (100 checkpoints) | prove inclusion (CLI) | verify-proof (CLI) |")
    print("|---:|---:|---:|---:|---:|---:|---:|---:|")
    ms = lambda t: "-" if t is None else f"{t * 1000:.0f} ms"  # noqa: E731
    for n, mb, a, full, c, p, v in rows:
        print(f"| {n:,} | {mb:.1f} MB | {a * 1000:.1f} ms | 100 ms | {full * 1000:.0f} ms | {ms(c)} | {ms(p)} | {ms(v)} |")
    return 0


def _reads(tmp: Path, ledger: Path, n: int, signer: object, verifier: object, priv: Path,
           pub: Path) -> tuple[float, float, float]:
    tree = merkle.Tree.from_data(cps.read_lines(ledger))
    store = cps.DirStore(tmp / f"many-{n}")
    step = max(1, n // 100)
    roots = merkle.roots_at(tree.leaves, range(step, n + 1, step))
    prev_size = 0
    for size in range(step, n + 1, step):
        cp = cps.Checkpoint("bench", size, roots[size])
        proof = None if not prev_size else {
            "from_size": prev_size, "from_root": cps.Checkpoint("b", prev_size, roots[prev_size]).root_b64,
            "hashes": [__import__("base64").b64encode(h).decode() for h in tree.consistency_proof(prev_size, size)]}
        store.store(cp, cp.sign(signer), proof)  # type: ignore[arg-type]
        prev_size = size

    def check() -> None:
        report = cps.check_ledger(ledger, store, [verifier])  # type: ignore[list-item]
        assert report.ok, report.problems

    proof_file = tmp / f"proof-{n}.json"

    def prove() -> None:
        subprocess.run([sys.executable, "-m", "tfaudit", "prove", "inclusion", str(ledger), "--seq", str(n // 2),
                        "--signing-key", str(priv), "-o", str(proof_file)], check=True, capture_output=True)

    def verify_proof() -> None:
        subprocess.run([sys.executable, "-m", "tfaudit", "verify-proof", str(proof_file), "--public-key", str(pub)],
                       check=True, capture_output=True)

    return best(check), best(prove), best(verify_proof)


if __name__ == "__main__":
    sys.exit(main())
