"""Benchmark reading the trail: verify (with signatures, and the chain alone), log, history, report.

    .venv/bin/python scripts/bench_reading.py [RUNS] [RESOURCES_PER_RUN] [BIG_RECORDS]
    .venv/bin/python scripts/bench_reading.py --index-only LEDGER   # log/history rows only, on LEDGER
    .venv/bin/python scripts/bench_reading.py --before DIR [RUNS ...]  # also verify by the code in DIR

`--before DIR`: DIR holds an older `tfaudit` package (`git archive COMMIT tfaudit | tar -x -C DIR`);
verify and `--chain-only` are then also timed with it, on the same ledger, side by side.

Builds a real signed ledger (RUNS applies of RESOURCES_PER_RUN changes each; default 1762 x 10
= 21,144 records, the size issue 13 measured) and a bigger one of about BIG_RECORDS records
(default 100,000) for log and history, in a temp dir. Then prints each figure beside the
limit it is measured against, measured in the same run:

- Ed25519 verification alone, per core, over the ledger's own payloads (libsodium, which verify
  uses, beside OpenSSL), times the cores this process may use: the most any verify with
  signatures can do here;
- SHA-256 over each line, per core, times the cores: the most a chain check can do.

Each row ends with the load average when it was measured; commands are the best of 3 runs.

Commands are timed as a user runs them (a subprocess, output to a pipe, interpreter start
included); "in-process" figures leave out the start (about 0.3 s) to show the rate itself.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from trail_factory import Res, add_run  # noqa: E402

from tfaudit.trail.signing import generate_keypair, load_signer, load_verifier  # noqa: E402


def build(ledger: Path, signer: object, runs: int, per_run: int) -> None:
    for i in range(runs):
        add_run(ledger, signer, time=f"2026-{1 + i % 12:02d}-{1 + i % 28:02d}T{i % 24:02d}:00:00.{i:06d}Z",  # type: ignore[arg-type]
                actor=f"user{i % 7}", workspace=f"ws{i % 5}", status="succeeded" if i % 9 else "partial",
                resources=[Res(f"terraform_data.r{j}", "update" if j % 3 else "replace",
                               "succeeded" if (i + j) % 11 else "failed", error=None if (i + j) % 11 else "boom")
                           for j in range(per_run)])


def build_batched(ledger: Path, signer: object, runs: int, per_run: int) -> None:
    """The same runs, appended a few thousand records at a time (one lock and fsync per batch, not per run)."""
    import trail_factory

    from tfaudit.trail.ledger import Ledger

    pending: list[dict] = []  # type: ignore[type-arg]

    class Collect:
        def __init__(self, path: Path) -> None:
            pass

        def append(self, recs: list[dict], signer: object) -> None:  # type: ignore[type-arg]
            pending.extend(recs)

    real = trail_factory.Ledger
    trail_factory.Ledger = Collect  # type: ignore[assignment,misc]
    try:
        for start in range(0, runs, 500):
            build(ledger, signer, min(500, runs - start), per_run)
            Ledger(ledger).append(pending, signer)  # type: ignore[arg-type]
            pending.clear()
    finally:
        trail_factory.Ledger = real  # type: ignore[misc]


def cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def anchors(ledger: Path, pub: Path) -> tuple[float, float, float]:
    """(Ed25519 verifications/s on one core with libsodium, which verify uses, and with OpenSSL, which it
    used before; SHA-256 of a line/s on one core), over this ledger's own lines, best of 3."""
    from tfaudit.trail.recordsig import _payload_from_line, strict_b64decode

    verifier = load_verifier(pub)
    lines = ledger.read_bytes().splitlines()[:3000]
    work = []
    for line in lines:
        rec = json.loads(line)
        payload = _payload_from_line(line, rec["signature"], 2)
        assert payload is not None
        work.append((strict_b64decode(rec["signature"]["value"]), payload))
    sodium, _ = verifier._sodium_key  # type: ignore[misc]
    openssl = verifier.public_key

    def rate(check: object, repeat: int = 1) -> float:
        best = 0.0
        for _ in range(3):
            t = time.process_time()
            for _ in range(repeat):
                check()  # type: ignore[operator]
            best = max(best, repeat * len(work) / (time.process_time() - t))
        return best

    ed_sodium = rate(lambda: [sodium.verify(payload, sig) for sig, payload in work])
    ed_openssl = rate(lambda: [openssl.verify(sig, payload) for sig, payload in work])  # type: ignore[call-arg]
    sha = rate(lambda: [hashlib.sha256(line).hexdigest() for line in lines], repeat=10)
    return ed_sodium, ed_openssl, sha


def cli(*args: str) -> float:
    t = time.monotonic()
    res = subprocess.run([sys.executable, "-m", "tfaudit", *args], capture_output=True, text=True)
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr
    return time.monotonic() - t


def in_process(ledger: Path, pub: Path, **kw: object) -> tuple[float, float]:
    """(wall seconds, CPU seconds of this process and its workers) of one verify_ledger call.

    CPU seconds show the cost when the machine is shared (wall time then includes waiting
    for a core); on a quiet machine wall time is CPU time divided by the cores used.
    """
    import resource

    from tfaudit.trail.verify import verify_ledger

    def cpu() -> float:
        me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
        return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime

    t, c = time.monotonic(), cpu()
    report = verify_ledger(ledger, [load_verifier(pub)], **kw)  # type: ignore[arg-type]
    assert report.ok, report.problems[:3]
    return time.monotonic() - t, cpu() - c


def row(what: str, figure: str, anchor: str, ratio: str) -> None:
    print(f"| {what} | {figure} | {anchor} | {ratio} | {os.getloadavg()[0]:.1f} |", flush=True)


def best_cli(*args: str, runs: int = 3) -> float:
    """The best of `runs` timings of a command (the machine is shared: the best is the least disturbed)."""
    return min(cli(*args) for _ in range(runs))


_AB = """
import json, resource, sys, time
from pathlib import Path
import tfaudit
from tfaudit.trail.signing import load_verifier
from tfaudit.trail.verify import verify_ledger

def cpu():
    me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime

best = None
for _ in range(3):
    c, t = cpu(), time.monotonic()
    report = verify_ledger(Path(sys.argv[1]), [load_verifier(Path(sys.argv[2]))], **json.loads(sys.argv[3]))
    took = (time.monotonic() - t, cpu() - c)
    assert report.ok
    best = min(best or took, took)
print(json.dumps([str(Path(tfaudit.__file__).parent), report.records, *best]))
"""


def before_rows(before: Path, ledger: Path, pub: Path) -> None:
    """verify and --chain-only by the tfaudit package in `before` and by this one, each best of 3 in-process."""
    for what, kw in (("verify with signatures", {}), ("verify --chain-only", {"chain_only": True})):
        got = []
        for path in (str(before), ""):
            env = {**os.environ, "PYTHONPATH": path} if path else dict(os.environ)
            out = subprocess.run([sys.executable, "-c", _AB, str(ledger), str(pub), json.dumps(kw)], env=env,
                                 capture_output=True, text=True, check=True).stdout
            got.append(json.loads(out))
        (old_pkg, n, old_wall, old_cpu), (new_pkg, _, wall, cpu) = got
        assert old_pkg != new_pkg, "PYTHONPATH did not pick the older package"
        row(f"{what}, {n:,} records, this code beside the code in {before}", f"{n / wall:,.0f} records/s "
            f"({n / cpu:,.0f} per CPU-second)", f"before: {n / old_wall:,.0f} records/s ({n / old_cpu:,.0f} per "
            "CPU-second)", f"{old_wall / wall:.2f} (per CPU-second {old_cpu / cpu:.2f})")


def main() -> None:
    before = None
    if len(sys.argv) > 2 and sys.argv[1] == "--before":
        before = Path(sys.argv.pop(2)).resolve()
        sys.argv.pop(1)
    if len(sys.argv) > 1 and sys.argv[1] == "--index-only":  # just the run index rows, on a ledger built before
        index_rows(Path(sys.argv[2]), sum(1 for _ in open(sys.argv[2], "rb")))
        return
    runs = int(sys.argv[1]) if len(sys.argv) > 1 else 1762
    per_run = int(sys.argv[2]) if len(sys.argv) > 2 else 10
    big = int(sys.argv[3]) if len(sys.argv) > 3 else 100_000
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        priv, pub = generate_keypair(d / "key")
        signer = load_signer(priv)
        ledger = d / "ledger.jsonl"
        t0 = time.monotonic()
        build(ledger, signer, runs, per_run)
        n, took = runs * (per_run + 2), time.monotonic() - t0
        print(f"ledger: {n:,} records, {ledger.stat().st_size / 1e6:.1f} MB (appended run by run under the lock "
              f"with fsync: {n / took:,.0f} records/s); {cores()} cores; load average {os.getloadavg()[0]:.1f}")
        ed, ed_openssl, sha = anchors(ledger, pub)
        k = cores()
        print()
        print("| what | figure | anchor (measured in this run) | ratio | load average |")
        print("|---|---:|---:|---:|---:|")
        row("Ed25519 verification alone, one core: libsodium (PyNaCl, what verify uses)", f"{ed:,.0f}/s",
            f"OpenSSL (cryptography, used before) {ed_openssl:,.0f}/s", f"{ed / ed_openssl:.2f}")
        t = best_cli("verify", str(ledger), "--public-key", str(pub))
        ti, ci = min(in_process(ledger, pub) for _ in range(3))
        row(f"verify with signatures, {n:,} records, {k} processes (target >= 20,000/s)",
            f"{n / ti:,.0f} records/s in-process, {n / t:,.0f}/s as a command ({t:.2f} s); "
            f"{n / ci:,.0f} per CPU-second", f"Ed25519 alone: {ed:,.0f}/s per core x {k} = {ed * k:,.0f}/s",
            f"{n / ti / (ed * k):.2f} (per CPU-second: {n / ci / ed:.2f}; vs the target: {n / ti / 20_000:.2f})")
        t = best_cli("verify", str(ledger), "--chain-only")
        ti, ci = min(in_process(ledger, pub, chain_only=True) for _ in range(3))
        row(f"verify --chain-only (hash chain + seq), {k} processes (target >= 200,000/s)",
            f"{n / ti:,.0f} records/s in-process, {n / t:,.0f}/s as a command ({t:.2f} s); "
            f"{n / ci:,.0f} per CPU-second", f"SHA-256 of each line: {sha:,.0f}/s per core x {k} = {sha * k:,.0f}/s",
            f"{n / ti / (sha * k):.2f} (per CPU-second: {n / ci / sha:.2f}; vs the target: {n / ti / 200_000:.2f})")
        if before is not None:
            before_rows(before, ledger, pub)
        t = best_cli("report", "--html", str(d / "r.html"), "--ledger", str(ledger))
        row(f"report --html, {n:,} records (chain, schema)", f"{t:.2f} s", "target 2 s", f"{t / 2:.2f}")
        t = best_cli("report", "--html", str(d / "r.html"), "--ledger", str(ledger), "--public-key", str(pub))
        row(f"report --html --public-key, {n:,} records", f"{t:.2f} s", "target 2 s", f"{t / 2:.2f}")
        for name, args in (("log", ["log", str(ledger)]),
                           ("history terraform_data.r1", ["history", "terraform_data.r1", "--ledger", str(ledger)])):
            t = cli(*args)
            row(f"{name}, {n:,} records (first use: builds the run index)", f"{t:.2f} s ({n / t:,.0f} records/s)",
                "target 100,000 records in 1 s", f"{100_000 / (n / t):.2f} s per 100,000")
        if big:
            bigger = d / "big.jsonl"
            build_batched(bigger, signer, max(1, big // (per_run + 2)), per_run)
            nb = max(1, big // (per_run + 2)) * (per_run + 2)
            index_rows(bigger, nb)


def timed(*args: str) -> tuple[float, float]:
    """(wall seconds, CPU seconds) of one command: CPU time is the steadier figure on a shared machine."""
    import resource

    def cpu() -> float:
        r = resource.getrusage(resource.RUSAGE_CHILDREN)
        return r.ru_utime + r.ru_stime

    c = cpu()
    return cli(*args), cpu() - c


def index_rows(ledger: Path, n: int) -> None:
    """log and history through the run index (LEDGER.runs), first use (building it) and warm, each
    beside the same command reading the whole ledger (the ledger given twice: several ledgers are
    never indexed), and the 1 s target. Wall time, and in brackets CPU time."""
    index = ledger.with_name(ledger.name + ".runs")
    lg, hist = ["log", str(ledger)], ["history", "terraform_data.r1", "--ledger", str(ledger)]

    def fig(t: tuple[float, float]) -> str:
        return f"{t[0]:.2f} s (CPU {t[1]:.2f} s)"

    for name, args, scan_args in (("log", lg, [*lg, str(ledger)]),
                                  ("history terraform_data.r1", hist, [*hist, "--ledger", str(ledger)])):
        index.unlink(missing_ok=True)
        cold = timed(*args)
        warm = min(timed(*args) for _ in range(3))
        scan = timed(*scan_args)
        load = os.getloadavg()[0]
        row(f"`tfaudit {name}`, {n:,} records, run index warm (target <= 1 s; load {load:.1f})", fig(warm),
            f"whole-ledger read {fig(scan)}", f"{warm[0] / scan[0]:.3f} (CPU {warm[1] / scan[1]:.3f})")
        row("the same, first use (builds `LEDGER.runs`)", fig(cold), f"whole-ledger read {fig(scan)}",
            f"{cold[0] / scan[0]:.2f} (CPU {cold[1] / scan[1]:.2f})")
    for name, more in (("log --actor user3 --outcome partial", ["--actor", "user3", "--outcome", "partial"]),
                       ("log --limit 20", ["--limit", "20"])):
        warm = min(timed(*lg, *more) for _ in range(3))
        scan = timed(*lg, str(ledger), *more)
        row(f"`tfaudit {name}`, {n:,} records, run index warm (load {os.getloadavg()[0]:.1f})", fig(warm),
            f"whole-ledger read {fig(scan)}", f"{warm[0] / scan[0]:.3f} (CPU {warm[1] / scan[1]:.3f})")
    start = min(timed("--version") for _ in range(3))
    print(f"run index: {index.stat().st_size / 1e6:.1f} MB beside a {ledger.stat().st_size / 1e6:.1f} MB ledger; "
          f"`tfaudit --version` {fig(start)}; load average {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
