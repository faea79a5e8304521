"""Benchmark the shared ledger stores: concurrent appends, then verify and history on a big trail.

    .venv/bin/python scripts/bench_stores.py [--writers 16] [--runs 10] [--records 100000] [--only s3|postgresql]

Starts a moto server (S3 with conditional writes) and a throwaway PostgreSQL cluster (as the
postgres user when run as root), both on loopback / a Unix socket. For each store:
1. WRITERS processes append RUNS runs each (a run = two appends: run.started, then
   3 resource.changed + run.finished), all to one chain: appends/s, p50/p99 append latency,
   retries after a lost race.
2. A second store is filled with RECORDS records in the layout real runs leave (runs of 10
   records: two batches), then `tfaudit verify URL` and `tfaudit history ADDR --ledger URL` run
   as a user runs them: wall time and peak memory (max RSS of the child).
"""

from __future__ import annotations

import argparse
import glob
import multiprocessing
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from trail_factory import Res, add_run  # noqa: E402

from tfaudit.trail.ledger import seal_batch  # noqa: E402
from tfaudit.trail.signing import generate_keypair, line_digest, load_signer  # noqa: E402
from tfaudit.trail.store import Tail, open_store  # noqa: E402


# --- servers -----------------------------------------------------------------------------------
@contextmanager
def moto() -> Iterator[dict[str, str]]:
    from moto.server import ThreadedMotoServer

    srv = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    srv.start()
    host, port = srv.get_host_and_port()
    try:
        yield {"AWS_ENDPOINT_URL": f"http://{host}:{port}", "AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench",
               "AWS_REGION": "us-east-1"}
    finally:
        srv.stop()


def _pg(argv: list[str]) -> list[str]:
    return ["runuser", "-u", "postgres", "--", *argv] if os.geteuid() == 0 else argv


@contextmanager
def postgres() -> Iterator[tuple[str, int, Path]]:
    bindir = Path(sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))[-1]).parent
    base = Path(tempfile.mkdtemp(prefix="tfaudit-pgb-"))
    base.chmod(0o755)
    if os.geteuid() == 0:
        shutil.chown(base, "postgres")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    subprocess.run(_pg([str(bindir / "initdb"), "-D", str(base / "data"), "-A", "trust", "-U", "postgres"]),
                   check=True, capture_output=True)
    subprocess.run(_pg([str(bindir / "pg_ctl"), "-D", str(base / "data"), "-o",
                        f"-k {base} -p {port} -c listen_addresses='' -c max_connections=100", "-l", str(base / "log"),
                        "-w", "start"]), check=True, capture_output=True)
    try:
        yield str(base), port, bindir
    finally:
        subprocess.run(_pg([str(bindir / "pg_ctl"), "-D", str(base / "data"), "-m", "fast", "stop"]), capture_output=True)
        shutil.rmtree(base, ignore_errors=True)


def new_store(kind: str, env: dict[str, str], pg: tuple[str, int, Path] | None) -> str:
    if kind == "s3":
        import boto3

        bucket = "bench-" + uuid.uuid4().hex[:10]
        boto3.client("s3", endpoint_url=env["AWS_ENDPOINT_URL"], region_name="us-east-1", aws_access_key_id="b",
                     aws_secret_access_key="b").create_bucket(Bucket=bucket)
        return f"s3://{bucket}/trail"
    assert pg is not None
    sock, port, bindir = pg
    name = "b" + uuid.uuid4().hex[:10]
    subprocess.run(_pg([str(bindir / "createdb"), "-h", sock, "-p", str(port), "-U", "postgres", name]), check=True)
    url = f"postgresql://postgres@/{name}?host={sock}&port={port}"
    store = open_store(url, env)
    store.init()  # type: ignore[attr-defined]
    return url


# --- 1. concurrent writers ---------------------------------------------------------------------
def _writer(url: str, env: dict[str, str], key: str, runs: int, ws: str) -> tuple[list[float], int]:
    os.environ.update(env)
    store = open_store(url, env)
    signer = load_signer(Path(key))
    for i in range(runs):
        add_run(store, signer, time="2026-01-01T00:00:00.000000Z", workspace=ws,
                resources=[Res(f"terraform_data.r{j}") for j in range(3)])
    stats = store.stats  # type: ignore[attr-defined]
    return list(stats.latencies), int(stats.retries)


def bench_writers(kind: str, url: str, env: dict[str, str], key: Path, writers: int, runs: int) -> None:
    ctx = multiprocessing.get_context("spawn")
    with ctx.Pool(writers) as pool:
        pool.starmap(_writer, [(url, env, str(key), 0, "warm")] * writers)  # start-up and imports, not timed
        t0 = time.monotonic()
        results = pool.starmap(_writer, [(url, env, str(key), runs, f"ws{i % 4}") for i in range(writers)])
        took = time.monotonic() - t0
    lat = sorted(x for lats, _ in results for x in lats)
    retries = sum(r for _, r in results)
    q = statistics.quantiles(lat, n=100)
    print(f"{kind:<10} {writers} writers x {runs} runs: {len(lat)} appends in {took:.1f} s = {len(lat) / took:.0f} appends/s; "
          f"latency p50 {q[49] * 1000:.0f} ms, p99 {q[98] * 1000:.0f} ms; {retries} retries after lost races "
          f"({retries / len(lat):.2f} per append)", flush=True)


# --- 2. a big trail ----------------------------------------------------------------------------
def _runs(signer: Any, total: int) -> Iterator[list[dict[str, Any]]]:
    """Records of runs of 10 (run.started; 8 resource.changed + run.finished), as add_run builds them."""
    class Capture:  # stands where add_run expects a store: keeps the batch instead of writing it
        def __init__(self) -> None:
            self.batches: list[list[dict[str, Any]]] = []

        def append(self, recs: list[dict[str, Any]], _signer: Any) -> None:
            self.batches.append(recs)

    cap = Capture()
    n = 0
    while n < total:
        cap.batches.clear()
        add_run(cap, signer, time=f"2026-{1 + n % 12:02d}-01T00:00:00.000000Z", workspace=f"ws{n % 50}",  # type: ignore[arg-type]
                actor=f"user{n % 7}", resources=[Res(f"terraform_data.r{(n // 10 + j) % 200}") for j in range(8)])
        recs = cap.batches[0]
        yield recs[:1]
        yield recs[1:]
        n += len(recs)


def fill(kind: str, url: str, env: dict[str, str], signer: Any, total: int) -> None:
    store = open_store(url, env)
    tail = Tail(0, None)
    sealed: list[tuple[int, list[bytes]]] = []
    t0 = time.monotonic()
    for recs in _runs(signer, total):
        out = seal_batch(recs, tail, signer)
        sealed.append((tail.seq + 1, [a.line for a in out]))
        tail = Tail(out[-1].seq, line_digest(out[-1].line))
    if kind == "s3":
        from tfaudit.trail.stores.s3 import batch_key

        def put(item: tuple[int, list[bytes]]) -> None:
            first, lines = item
            assert store.put(batch_key(store.prefix, first), b"".join(x + b"\n" for x in lines),  # type: ignore[attr-defined]
                             if_none_match=True) is not None
        with ThreadPoolExecutor(16) as pool:
            list(pool.map(put, sealed))
        store._move_head(batch_key(store.prefix, sealed[-1][0]), tail.seq)  # type: ignore[attr-defined]
    else:
        store.import_lines([x for _, lines in sealed for x in lines])  # type: ignore[attr-defined]
    print(f"{kind:<10} filled with {tail.seq} records in {len(sealed)} batches ({time.monotonic() - t0:.0f} s)", flush=True)


# The child reports its own high-water mark (VmHWM of its own address space) when it exits: the
# rusage of a child forked from this big process would count this process's pages.
_MEASURED = ("import atexit, runpy, sys\n"
             "report = sys.argv.pop(1)\n"
             "def hwm():\n"
             "    for line in open('/proc/self/status'):\n"
             "        if line.startswith('VmHWM:'):\n"
             "            open(report, 'w').write(line.split()[1])\n"
             "atexit.register(hwm)\n"
             "sys.argv = ['tfaudit', *sys.argv[1:]]\n"
             "runpy.run_module('tfaudit', run_name='__main__')\n")


def timed(name: str, argv: list[str], env: dict[str, str]) -> None:
    with tempfile.TemporaryFile() as out, tempfile.NamedTemporaryFile("r") as hwm:
        t0 = time.monotonic()
        res = subprocess.run([sys.executable, "-c", _MEASURED, hwm.name, *argv], stdout=out, stderr=subprocess.STDOUT,
                             env={**os.environ, **env})
        took = time.monotonic() - t0
        out.seek(0)
        tail = out.read().decode(errors="replace").strip().splitlines()[-1:]
        peak_kb = int(hwm.read().strip() or 0)
    ok = "ok" if res.returncode == 0 else f"exit {res.returncode}: {tail}"
    print(f"           {name:<28} {took:6.1f} s, peak memory {peak_kb / 1024:.0f} MB ({ok})", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--writers", type=int, default=16)
    ap.add_argument("--runs", type=int, default=10)
    ap.add_argument("--records", type=int, default=100_000)
    ap.add_argument("--only", choices=["s3", "postgresql"])
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp, moto() as aws, postgres() as pg:
        priv, pub = generate_keypair(Path(tmp) / "signing-key")
        signer = load_signer(priv)
        for kind in ["s3", "postgresql"]:
            if args.only and kind != args.only:
                continue
            url = new_store(kind, aws, pg)
            bench_writers(kind, url, aws, priv, args.writers, args.runs)
            if not args.records:
                continue
            big = new_store(kind, aws, pg)
            fill(kind, big, aws, signer, args.records)
            timed("verify URL", ["verify", big, "--public-key", str(pub)], aws)
            timed("history ADDR --ledger URL", ["history", "terraform_data.r7", "--ledger", big], aws)


if __name__ == "__main__":
    main()
