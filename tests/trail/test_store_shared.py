"""The shared ledger stores (S3 with conditional writes, PostgreSQL) keep the store contract
against real servers: compare-and-append, forward/backward reads, and no fork under concurrency."""

from __future__ import annotations

import json
import multiprocessing
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from trail_factory import Res, add_run

from tfaudit.errors import LedgerError
from tfaudit.trail.signing import Ed25519Signer, line_digest, generate_keypair, load_signer, load_verifier
from tfaudit.trail.store import LedgerStore, Tail, open_store
from tfaudit.trail.verify import verify_ledger

pytestmark = pytest.mark.slow


def _run(store: LedgerStore, signer: Ed25519Signer, workspace: str, n: int = 1) -> str:
    return add_run(store, signer, time="2026-01-01T00:00:00.000000Z", workspace=workspace,
                   resources=[Res(f"terraform_data.r{i}") for i in range(n)])


@pytest.fixture(params=["s3", "postgresql"])
def store_url(request: pytest.FixtureRequest, base_env: dict[str, str]) -> str:
    if request.param == "s3":
        return str(request.getfixturevalue("s3_ledger_url"))
    url = str(request.getfixturevalue("pg_url"))
    from tfaudit.trail.stores.postgres import PostgresStore

    store = open_store(url)
    assert isinstance(store, PostgresStore)
    store.init()
    return url


@pytest.fixture
def env(moto_server: Any) -> dict[str, str]:
    return {**os.environ, **moto_server.aws_env()}


@pytest.fixture
def signer(tmp_path: Path) -> Ed25519Signer:
    priv, _ = generate_keypair(tmp_path / "k" / "signing-key")
    return load_signer(priv)


def test_append_and_read_both_ways(store_url: str, env: dict[str, str], signer: Ed25519Signer, tmp_path: Path) -> None:
    store = open_store(store_url, env)
    assert store.tail() == Tail(0, None)
    assert list(store.lines()) == []
    _run(store, signer, "prod")  # run.started, resource.changed, run.finished
    _run(store, signer, "stage", 2)
    tail = store.tail()
    assert tail.seq == 7
    forward = list(store.lines())
    assert [n for n, _ in forward] == list(range(1, 8))
    assert all(raw.endswith(b"\n") for _, raw in forward)
    assert [json.loads(raw)["chain"]["seq"] for _, raw in forward] == list(range(1, 8))
    assert line_digest(forward[-1][1]) == tail.digest
    assert [n for n, _ in store.lines(3)] == [3, 4, 5, 6, 7]
    assert [n for n, _ in store.lines(5)] == [5, 6, 7]
    assert list(store.lines_backward()) == list(reversed(forward))
    assert [r["chain"]["seq"] for r in store.records()] == list(range(1, 8))
    # another process (a fresh store object) sees the same chain and continues it
    again = open_store(store_url, env)
    assert again.tail() == tail
    _run(again, signer, "prod")
    assert json.loads(next(again.lines(8))[1])["chain"]["prev"] == tail.digest
    report = verify_ledger(again, [load_verifier(tmp_path / "k" / "signing-key.pub")])
    assert report.ok, report.problems
    assert report.records == 10 and report.runs == 3
    # a snapshot stays where it was taken while others append
    view = again.snapshot()
    _run(store, signer, "stage")
    assert view.tail().seq == 10 and again.tail().seq == 13
    assert [n for n, _ in view.lines(9)] == [9, 10]
    assert [n for n, _ in view.lines_backward()][:2] == [10, 9]
    assert {ws: v["runs"] for ws, v in report.workspaces.items()} == {"prod": 2, "stage": 1}


def _writer(url: str, env: dict[str, str], key: str, workspace: str, runs: int) -> tuple[int, int]:
    """One writer process: `runs` runs of 3 records; returns (appends, retries after lost races)."""
    store = open_store(url, env)
    signer = load_signer(Path(key))
    for i in range(runs):
        _run(store, signer, workspace, 1 + i % 3)
    stats = getattr(store, "stats")
    return stats.appends, stats.retries


def test_concurrent_writers_never_fork_or_interleave(store_url: str, env: dict[str, str], signer: Ed25519Signer,
                                                      tmp_path: Path) -> None:
    key = str(tmp_path / "k" / "signing-key")
    ctx = multiprocessing.get_context("spawn")
    n_writers, runs = 8, 5
    with ctx.Pool(n_writers) as pool:
        results = pool.starmap(_writer, [(store_url, env, key, f"ws{i % 2}", runs) for i in range(n_writers)])
    assert sum(a for a, _ in results) == n_writers * runs
    store = open_store(store_url, env)
    report = verify_ledger(store, [load_verifier(tmp_path / "k" / "signing-key.pub")])
    assert report.ok, report.problems[:5]
    assert report.runs == n_writers * runs
    recs = list(store.records())
    # every run whole and contiguous: a batch is never split by another writer's records
    by_run: dict[str, list[int]] = {}
    for r in recs:
        by_run.setdefault(r["run"]["id"], []).append(r["chain"]["seq"])
    assert len(by_run) == n_writers * runs
    assert all(seqs == list(range(seqs[0], seqs[0] + len(seqs))) for seqs in by_run.values())
    assert len({r["id"] for r in recs}) == len(recs) == store.tail().seq


def test_a_writer_with_a_stale_tail_loses_and_retries(store_url: str, env: dict[str, str], signer: Ed25519Signer) -> None:
    """Two writers read the same tail; the second one's write is refused by the store and it
    re-reads the tail: the chain stays linear."""
    a, b = open_store(store_url, env), open_store(store_url, env)
    _run(a, signer, "prod")
    stale = b.tail()
    real_tail = b.tail
    calls = {"n": 0}

    def tail_once_stale() -> Tail:
        calls["n"] += 1
        return stale if calls["n"] == 1 else real_tail()

    _run(a, signer, "prod")  # a moves on: b's view is now stale
    setattr(b, "tail", tail_once_stale)
    if hasattr(b, "_tail"):  # the PostgreSQL store reads the tail inside its transaction
        real_inner = b._tail

        def inner_once_stale(cur: Any) -> Tail:
            calls["inner"] = calls.get("inner", 0) + 1
            return stale if calls["inner"] == 1 else real_inner(cur)

        setattr(b, "_tail", inner_once_stale)
    _run(b, signer, "stage")
    assert getattr(b, "stats").retries >= 1
    seqs = [json.loads(raw)["chain"]["seq"] for _, raw in open_store(store_url, env).lines()]
    assert seqs == list(range(1, 10))


def test_postgres_without_tables_says_run_init(pg_url: str, signer: Ed25519Signer) -> None:
    store = open_store(pg_url)
    assert store.tail() == Tail(0, None)
    with pytest.raises(LedgerError, match="ledger init"):
        store.check_writable()
