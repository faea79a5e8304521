"""kill -9 of tfaudit mid-apply: terraform finishes on its own; recovery completes the run (real terraform)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from conftest import CliResult, read_ledger

pytestmark = [pytest.mark.slow, pytest.mark.terraform]


def _wait_for(what: str, check: Callable[[], Any], timeout: float = 120) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = check()
        if got:
            return got
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[-1].split()[0] != "Z"


def _kill_mid_apply(path: Path, env: dict[str, str], *args: str) -> tuple[int, Path]:
    """Start `tfaudit apply`, kill -9 it once terraform is applying; (terraform's pid, journal dir)."""
    proc = subprocess.Popen([sys.executable, "-m", "tfaudit", "apply", "-auto-approve", *args], cwd=path, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    journal_dir = path / ".tfaudit" / ".tfaudit-journal"

    def applying() -> tuple[int, Path] | None:
        metas = list(journal_dir.glob("*.meta.json")) if journal_dir.is_dir() else []
        if not metas:
            return None
        try:
            meta = json.loads(metas[0].read_text())
        except ValueError:
            return None
        stream = journal_dir / f"{meta['run_id']}.jsonl"
        if meta.get("terraform_pid") and stream.is_file() and b'"apply_start"' in stream.read_bytes():
            return int(meta["terraform_pid"]), stream
        return None

    tf_pid, stream = _wait_for("terraform to start applying", applying)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=10)
    assert _alive(tf_pid), "terraform died with tfaudit"
    return tf_pid, stream


@pytest.fixture
def crash(tf_workdir: Callable[[str], Path], keypair: tuple[Path, Path], run_tfaudit: Callable[..., CliResult],
          base_env: dict[str, str]) -> dict[str, Any]:
    path = tf_workdir("crash")
    priv, pub = keypair
    env = {"TFAUDIT_SIGNING_KEY": str(priv)}
    return {"path": path, "pub": pub, "env": {**base_env, **env},
            "tfaudit": lambda *a, **kw: run_tfaudit(*a, cwd=path, env=env, **kw)}


def _state_addresses(path: Path) -> list[str]:
    state = json.loads((path / "terraform.tfstate").read_text())
    return [f"terraform_data.{r['name']}[{i['index_key']}]" for r in state["resources"] for i in r["instances"]]


def test_kill_9_mid_apply_terraform_completes_and_recover_finishes_the_run(crash: dict[str, Any]) -> None:
    path, tfaudit = crash["path"], crash["tfaudit"]
    tf_pid, stream = _kill_mid_apply(path, crash["env"])
    _wait_for("terraform to finish on its own", lambda: not _alive(tf_pid), timeout=180)
    assert len(_state_addresses(path)) == 203  # terraform saved every resource
    assert not (path / ".terraform.tfstate.lock.info").exists()  # and released its lock

    before = tfaudit("verify", ".tfaudit/ledger.jsonl", "--public-key", str(crash["pub"]))
    assert before.returncode == 1 and "unfinished_run" in before.output

    res = tfaudit("recover")
    assert res.returncode == 0, res.output
    assert "recovered run" in res.stdout and "succeeded" in res.stdout

    recs = read_ledger(path / ".tfaudit" / "ledger.jsonl")
    changed = [r for r in recs if r["type"] == "resource.changed"]
    assert len(changed) == 203
    assert {r["resource"]["status"] for r in changed} == {"succeeded"}
    assert {r["resource"]["address"] for r in changed} == set(_state_addresses(path))
    finished = [r for r in recs if r["type"] == "run.finished"]
    assert len(finished) == 1
    outcome = finished[0]["outcome"]
    assert outcome["status"] == "succeeded" and outcome["counts"]["succeeded"] == 203
    assert outcome["recovered"]["journal"]["finished"] is True and outcome["recovered"]["by"] == "alice"
    assert outcome["state"]["after"]["resources"] == 203 and outcome["state"]["before"] is None
    assert not stream.exists()  # the journal is gone once the run is finished

    after = tfaudit("verify", ".tfaudit/ledger.jsonl", "--public-key", str(crash["pub"]))
    assert after.returncode == 0, after.output

    # the next run does not take the recovered run's own changes for changes made outside tfaudit
    nxt = tfaudit("plan")
    assert nxt.returncode == 0, nxt.output
    assert "outside tfaudit" not in nxt.stderr
    assert not [r for r in read_ledger(path / ".tfaudit" / "ledger.jsonl") if r["type"] == "state.out_of_band"]


def test_the_next_apply_finishes_a_killed_run_before_its_own(crash: dict[str, Any]) -> None:
    path, tfaudit = crash["path"], crash["tfaudit"]
    tf_pid, _ = _kill_mid_apply(path, crash["env"], "-var=n=20")
    # while terraform still applies, the next apply waits for it, then recovers, then runs
    res = tfaudit("apply", "-auto-approve", "-var=n=20")
    assert res.returncode == 0, res.output
    assert not _alive(tf_pid)
    assert "finished an interrupted run" in res.stderr
    assert "outside tfaudit" not in res.stderr

    recs = read_ledger(path / ".tfaudit" / "ledger.jsonl")
    assert [r["type"] for r in recs if r["type"].startswith("run.")] == [
        "run.started", "run.finished", "run.started", "run.finished"]
    first, second = [r for r in recs if r["type"] == "run.finished"]
    assert first["outcome"]["recovered"] is not None and first["outcome"]["status"] == "succeeded"
    assert first["outcome"]["counts"]["succeeded"] == 23
    assert "recovered" not in second["outcome"] and second["outcome"]["counts"]["succeeded"] == 0
    assert not [r for r in recs if r["type"] == "state.out_of_band"]
    ok = tfaudit("verify", ".tfaudit/ledger.jsonl", "--public-key", str(crash["pub"]))
    assert ok.returncode == 0, ok.output


def test_recovery_checks_a_killed_apply_against_its_state_out_file(crash: dict[str, Any]) -> None:
    """-state/-state-out: the journal names the file terraform writes; recovery reads that one."""
    path, tfaudit = crash["path"], crash["tfaudit"]
    tf_pid, _ = _kill_mid_apply(path, crash["env"], "-var=n=20", "-state=in.tfstate", "-state-out=out.tfstate")
    _wait_for("terraform to finish on its own", lambda: not _alive(tf_pid), timeout=180)
    res = tfaudit("recover")
    assert res.returncode == 0, res.output
    recs = read_ledger(path / ".tfaudit" / "ledger.jsonl")
    assert {r["resource"]["status"] for r in recs if r["type"] == "resource.changed"} == {"succeeded"}
    outcome = [r for r in recs if r["type"] == "run.finished"][0]["outcome"]
    assert outcome["status"] == "succeeded" and outcome["counts"]["succeeded"] == 23
    written = json.loads((path / "out.tfstate").read_text())
    assert (outcome["state"]["after"]["serial"], outcome["state"]["after"]["lineage"]) == (
        written["serial"], written["lineage"])
    assert not (path / "terraform.tfstate").exists() and not (path / "in.tfstate").exists()
