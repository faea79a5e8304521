"""Sinks deliver from a shared store: what one runner failed to deliver goes out from any other
machine (another directory, no local outbox), exactly once per sink and record id."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from sinks_support import Receiver, new_signer, run_records

from tfaudit.config import parse_config
from tfaudit.sinks.delivery import deliver, enroll, status
from tfaudit.trail.store import open_store

pytestmark = pytest.mark.slow

SECRET = "whsec-shared-5c1d"
CHANGES = [("aws_s3_bucket.logs", "create", "succeeded"), ("aws_iam_role.old", "delete", "succeeded")]


@pytest.fixture(params=["s3", "postgresql"])
def shared(request: pytest.FixtureRequest, moto_server: Any) -> tuple[str, dict[str, str]]:
    if request.param == "s3":
        return str(request.getfixturevalue("s3_ledger_url")), moto_server.aws_env()
    url = str(request.getfixturevalue("pg_url"))
    open_store(url).init()  # type: ignore[attr-defined]
    return url, {}


@pytest.fixture
def hook() -> Iterator[Receiver]:
    r = Receiver(secret=SECRET.encode())
    yield r
    r.stop()


def _config(d: Path, hook: Receiver) -> Path:
    d.mkdir(parents=True, exist_ok=True)
    p = d / ".tfaudit.hcl"
    p.write_text(f'sink "webhook" "siem" {{\n  url = "{hook.url}/ingest"\n  secret_env = "HOOK_SECRET"\n}}\n'
                 "delivery {\n  max_attempts = 2\n  deadline_seconds = 8\n}\n")
    return p


def test_a_sink_down_during_one_runner_gets_its_records_from_a_flush_elsewhere(
        shared: tuple[str, dict[str, str]], hook: Receiver, tmp_path: Path, run_tfaudit: Callable[..., Any]) -> None:
    url, aws = shared
    env = {**os.environ, **aws, "HOOK_SECRET": SECRET}
    signer, _ = new_signer(tmp_path)
    # runner 1: enrolls the sink, appends two runs, the webhook is down
    cfg = parse_config(_config(tmp_path / "runner1", hook))
    store = open_store(url, env)
    enroll(store, cfg.section("sink"))
    hook.stop()
    appended = store.append(run_records(CHANGES), signer) + store.append(run_records(CHANGES[:1]), signer)
    report = deliver(store, cfg.section("sink"), cfg.section("delivery"), env)
    assert report.pending == len(appended) and report.delivered == 0
    assert not (tmp_path / "runner1" / ".tfaudit").exists()  # no local outbox: the state is in the store

    # another machine: a different directory, its own config file, only the store in common
    hook.start()
    other = tmp_path / "runner2"
    _config(other, hook)
    st = run_tfaudit("status", "--ledger", url, cwd=other, env={**aws, "HOOK_SECRET": SECRET})
    assert st.returncode == 0 and f"{len(appended)} pending" in st.stdout, st.output
    res = run_tfaudit("flush", "--ledger", url, cwd=other, env={**aws, "HOOK_SECRET": SECRET})
    assert res.returncode == 0 and f"webhook.siem: {len(appended)} delivered" in res.stdout, res.output
    keys = [a.headers["Idempotency-Key"] for a in hook.all()]
    assert keys == [a.record["id"] for a in appended]  # each exactly once, in chain order
    assert all(a.signature_ok for a in hook.all())
    # flushing again (from anywhere) sends nothing more
    res = run_tfaudit("flush", "--ledger", url, cwd=tmp_path / "runner1", env={**aws, "HOOK_SECRET": SECRET})
    assert res.returncode == 0 and "webhook.siem: 0 delivered" in res.stdout, res.output
    assert len(hook.all()) == len(appended)
    assert status(store, cfg.section("sink"))[0].pending == 0


def test_concurrent_flushes_from_two_machines_send_each_record_once(
        shared: tuple[str, dict[str, str]], hook: Receiver, tmp_path: Path, base_env: dict[str, str]) -> None:
    url, aws = shared
    env = {**os.environ, **aws, "HOOK_SECRET": SECRET}
    signer, _ = new_signer(tmp_path)
    cfg = parse_config(_config(tmp_path / "a", hook))
    _config(tmp_path / "b", hook)
    store = open_store(url, env)
    enroll(store, cfg.section("sink"))
    appended = []
    for _ in range(4):
        appended += store.append(run_records(CHANGES), signer)

    def flush(d: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "tfaudit", "flush", "--ledger", url, "--deadline", "30"],
                              cwd=tmp_path / d, env={**base_env, **aws, "HOOK_SECRET": SECRET}, capture_output=True,
                              text=True, timeout=120)

    with ThreadPoolExecutor(2) as pool:
        results = list(pool.map(flush, ["a", "b"]))
    assert all(r.returncode in (0, 4) for r in results), [r.stderr for r in results]
    if any(r.returncode == 4 for r in results):  # one waited out the other's lease: a third flush finishes
        assert flush("a").returncode == 0
    keys = [a.headers["Idempotency-Key"] for a in hook.all()]
    assert sorted(keys) == sorted(a.record["id"] for a in appended) and len(set(keys)) == len(keys)
