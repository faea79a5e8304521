"""Shared stores end to end with real terraform: runners at different paths append to one chain,
a `terraform apply` between them is reported by the next runner, and many concurrent applies
from several working directories and workspaces leave one verifiable chain, nothing lost or doubled."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from conftest import FIXTURES, require_terraform

from tfaudit.trail.signing import generate_keypair
from tfaudit.trail.store import open_store

pytestmark = [pytest.mark.slow, pytest.mark.terraform]


@pytest.fixture(params=["s3", "postgresql"])
def store(request: pytest.FixtureRequest, moto_server: Any) -> tuple[str, dict[str, str]]:
    if request.param == "s3":
        return str(request.getfixturevalue("s3_ledger_url")), moto_server.aws_env()
    url = str(request.getfixturevalue("pg_url"))
    open_store(url).init()  # type: ignore[attr-defined]
    return url, {}


def _runner(tmp: Path, name: str, state: Path, base_env: dict[str, str]) -> Path:
    """A fresh checkout of the config at its own path, initialised against the shared state file."""
    tf = require_terraform()
    d = tmp / name / "checkout" / "infra"
    shutil.copytree(FIXTURES / "shared-runner", d)
    res = subprocess.run([tf, "init", "-input=false", "-no-color", f"-backend-config=path={state}"], cwd=d,
                         env=base_env, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stdout + res.stderr
    return d


def _records(url: str, env: dict[str, str]) -> list[dict[str, Any]]:
    return list(open_store(url, {**os.environ, **env}).records())


def _two_runners(url: str, aws: dict[str, str], tmp_path: Path, base_env: dict[str, str],
                 run_tfaudit: Callable[..., Any]) -> tuple[Path, Path, Path, list[dict[str, Any]]]:
    """Runner 1 applies, someone applies with plain terraform, runner 2 (another path) applies."""
    priv, pub = generate_keypair(tmp_path / "secret" / "signing-key")  # the CI secret both runners get
    env = {**aws, "TFAUDIT_SIGNING_KEY": str(priv)}
    state = tmp_path / "shared" / "terraform.tfstate"
    state.parent.mkdir()
    one, two = _runner(tmp_path, "runner1", state, base_env), _runner(tmp_path, "runner2", state, base_env)
    res = run_tfaudit("apply", "-auto-approve", "-var", "gen=1", "--ledger", url, cwd=one, env=env)
    assert res.returncode == 0, res.output
    out = subprocess.run([require_terraform(), "apply", "-auto-approve", "-no-color", "-var", "gen=2"], cwd=one,
                         env=base_env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stdout + out.stderr
    res = run_tfaudit("apply", "-auto-approve", "-var", "gen=3", "--ledger", url, cwd=two, env=env)
    assert res.returncode == 0, res.output
    return one, two, pub, _records(url, aws)


def test_two_runners_at_different_paths_continue_one_chain(store: tuple[str, dict[str, str]], tmp_path: Path,
                                                           base_env: dict[str, str],
                                                           run_tfaudit: Callable[..., Any]) -> None:
    url, aws = store
    one, two, pub, recs = _two_runners(url, aws, tmp_path, base_env, run_tfaudit)
    assert [r["chain"]["seq"] for r in recs] == list(range(1, len(recs) + 1))  # one continuous chain
    assert {r["run"]["working_dir"] for r in recs if r["type"] == "run.started"} == {str(one), str(two)}
    res = run_tfaudit("verify", url, "--public-key", str(pub), env=aws)
    assert res.returncode == 0 and "OK:" in res.stdout, res.output


def test_the_outside_change_between_runners_is_reported(store: tuple[str, dict[str, str]], tmp_path: Path,
                                                        base_env: dict[str, str],
                                                        run_tfaudit: Callable[..., Any]) -> None:
    url, aws = store
    one, two, pub, recs = _two_runners(url, aws, tmp_path, base_env, run_tfaudit)
    oob = [r for r in recs if r["type"] == "state.out_of_band"]
    assert len(oob) == 1 and oob[0]["run"]["working_dir"] == str(two), [r["type"] for r in recs]
    assert "terraform_data.web" in json.dumps(oob[0]["detail"])
    res = run_tfaudit("verify", url, "--public-key", str(pub), env=aws)
    assert res.returncode == 0, res.output


def _apply(args: tuple[Path, str, str, dict[str, str], str]) -> subprocess.CompletedProcess[str]:
    cwd, workspace, url, env, gen = args
    return subprocess.run([sys.executable, "-m", "tfaudit", "apply", "-auto-approve", "-var", f"gen={gen}",
                           "--ledger", url], cwd=cwd, env={**env, "TF_WORKSPACE": workspace},
                          capture_output=True, text=True, timeout=600)


def test_eight_concurrent_applies_from_four_directories_two_workspaces(store: tuple[str, dict[str, str]],
                                                                      tmp_path: Path, base_env: dict[str, str],
                                                                      run_tfaudit: Callable[..., Any]) -> None:
    url, aws = store
    priv, pub = generate_keypair(tmp_path / "secret" / "signing-key")
    env = {**base_env, **aws, "TFAUDIT_SIGNING_KEY": str(priv)}
    dirs = []
    for i in range(4):  # four runners, each with its own state per workspace
        state = tmp_path / f"state{i}" / "terraform.tfstate"
        state.parent.mkdir()
        d = _runner(tmp_path, f"runner{i}", state, base_env)
        for ws in ("blue", "green"):
            subprocess.run([require_terraform(), "workspace", "new", ws], cwd=d, env=base_env, capture_output=True,
                           check=True, timeout=120)
        dirs.append(d)
    jobs = [(dirs[i % 4], ("blue", "green")[i // 4], url, env, str(10 + i)) for i in range(8)]
    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(_apply, jobs))
    assert all(r.returncode == 0 for r in results), [r.stderr[-500:] for r in results if r.returncode]

    recs = _records(url, aws)
    assert [r["chain"]["seq"] for r in recs] == list(range(1, len(recs) + 1))
    assert len({r["id"] for r in recs}) == len(recs)  # nothing doubled
    started = {r["run"]["id"] for r in recs if r["type"] == "run.started"}
    finished = {r["run"]["id"]: r for r in recs if r["type"] == "run.finished"}
    assert len(started) == 8 and set(finished) == started  # every run complete
    assert all(f["outcome"]["status"] == "succeeded" for f in finished.values())
    changed = [r for r in recs if r["type"] == "resource.changed"]
    assert len(changed) == 16  # 2 resources created in each of 8 fresh states: none lost
    per_run = {rid: [r["chain"]["seq"] for r in recs if r["run"]["id"] == rid and r["type"] != "run.started"]
               for rid in started}
    assert all(s == list(range(s[0], s[0] + len(s))) for s in per_run.values())  # batches never interleave
    res = run_tfaudit("verify", url, "--public-key", str(pub), "--format", "json", env=aws)
    assert res.returncode == 0, res.output
    report = json.loads(res.stdout)
    assert report["runs"] == 8 and set(report["workspaces"]) == {"blue", "green"}
    assert all(v["runs"] == 4 and v["ok"] for v in report["workspaces"].values())
