"""`tfaudit ledger init` and `tfaudit ledger import FILE URL`: a file ledger joins a shared store with
its records and signatures intact, later runs continue its chain, and `tfaudit verify URL` accepts it."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from trail_factory import Res, add_run

from tfaudit.trail.signing import generate_keypair, load_signer
from tfaudit.trail.store import open_store

pytestmark = pytest.mark.slow


@pytest.fixture(params=["s3", "postgresql"])
def empty_store(request: pytest.FixtureRequest, moto_server: Any) -> tuple[str, dict[str, str]]:
    if request.param == "s3":
        return str(request.getfixturevalue("s3_ledger_url")), moto_server.aws_env()
    return str(request.getfixturevalue("pg_url")), {}


def test_imported_file_ledger_verifies_inside_the_store(empty_store: tuple[str, dict[str, str]], tmp_path: Path,
                                                        run_tfaudit: Callable[..., Any]) -> None:
    url, env = empty_store
    old_priv, old_pub = generate_keypair(tmp_path / "old" / "signing-key")
    new_priv, new_pub = generate_keypair(tmp_path / "new" / "signing-key")
    file_ledger = tmp_path / "laptop" / "ledger.jsonl"
    for i in range(3):
        add_run(file_ledger, load_signer(old_priv), time=f"2026-01-0{i + 1}T00:00:00.000000Z", workspace="prod",
                resources=[Res("terraform_data.a"), Res("terraform_data.b")])
    original = file_ledger.read_bytes().splitlines()

    res = run_tfaudit("ledger", "init", url, env=env)
    assert res.returncode == 0, res.output
    res = run_tfaudit("ledger", "import", str(file_ledger), url, env=env)
    assert res.returncode == 0, res.output
    assert "imported 12 records" in res.stdout

    full_env = {**os.environ, **env}
    store = open_store(url, full_env)
    assert [raw.rstrip(b"\n") for _, raw in store.lines()] == original  # byte for byte, signatures intact
    # a runner with another key continues the imported chain
    add_run(store, load_signer(new_priv), time="2026-02-01T00:00:00.000000Z", workspace="stage",
            resources=[Res("terraform_data.c")])
    res = run_tfaudit("verify", url, "--public-key", str(old_pub), "--public-key", str(new_pub), "--json", env=env)
    assert res.returncode == 0, res.output
    report = json.loads(res.stdout)
    assert report["ok"] and report["records"] == 15 and report["runs"] == 4
    assert report["workspaces"]["prod"]["runs"] == 3 and report["workspaces"]["stage"]["runs"] == 1
    # the text report names each workspace
    res = run_tfaudit("verify", url, "--public-key", str(old_pub), "--public-key", str(new_pub), env=env)
    assert "workspace prod: 12 records, 3 runs" in res.stdout and "workspace stage: 3 records, 1 runs" in res.stdout
    # the reading commands take the store's URL too
    res = run_tfaudit("log", "--ledger", url, "--format", "json", env=env)
    assert res.returncode == 0, res.output
    assert sorted(r["workspace"] for r in json.loads(res.stdout)) == ["prod", "prod", "prod", "stage"]
    res = run_tfaudit("history", "terraform_data.c", "--ledger", url, env=env)
    assert res.returncode == 0 and "terraform_data.c" in res.stdout, res.output
    # without the imported chain's key, its records are named as unverifiable
    res = run_tfaudit("verify", url, "--public-key", str(new_pub), env=env)
    assert res.returncode == 1 and "unknown_key" in res.stdout

    # a second import into the now non-empty store is refused, and the store is left as it was
    res = run_tfaudit("ledger", "import", str(file_ledger), url, env=env)
    assert res.returncode == 64 and "already holds records" in res.stderr
    assert store.tail().seq == 15


def test_a_damaged_file_ledger_is_not_imported(empty_store: tuple[str, dict[str, str]], tmp_path: Path,
                                               run_tfaudit: Callable[..., Any]) -> None:
    url, env = empty_store
    priv, _ = generate_keypair(tmp_path / "k" / "signing-key")
    ledger = tmp_path / "ledger.jsonl"
    for i in range(2):
        add_run(ledger, load_signer(priv), time="2026-01-01T00:00:00.000000Z")
    lines = ledger.read_bytes().splitlines(keepends=True)
    ledger.write_bytes(b"".join(lines[:2] + lines[3:]))  # a record removed
    assert run_tfaudit("ledger", "init", url, env=env).returncode == 0
    res = run_tfaudit("ledger", "import", str(ledger), url, env=env)
    assert res.returncode == 64 and "line 3 breaks the chain" in res.stderr
    assert not open_store(url, {**os.environ, **env}).exists()
