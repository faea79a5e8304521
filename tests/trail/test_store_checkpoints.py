"""Checkpoints of a shared store: any runner anchors (no local cache to lean on), each checkpoint
carries a consistency proof from the previous one, and records cut off the store's end are caught."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from trail_factory import Res, add_run

from tfaudit.config import Config
from tfaudit.trail.checkpoints import anchor, resolve_settings
from tfaudit.trail.signing import generate_keypair, load_signer
from tfaudit.trail.store import open_store

pytestmark = pytest.mark.slow


@pytest.fixture(params=["s3", "postgresql"])
def shared(request: pytest.FixtureRequest, moto_server: Any) -> tuple[str, dict[str, str]]:
    if request.param == "s3":
        return str(request.getfixturevalue("s3_ledger_url")), moto_server.aws_env()
    url = str(request.getfixturevalue("pg_url"))
    open_store(url).init()  # type: ignore[attr-defined]
    return url, {}


def _cut_last_batch(url: str, env: dict[str, str], moto_server: Any) -> None:
    """What someone with write access to the store could do: remove its newest records."""
    store = open_store(url, env)
    if url.startswith("s3://"):
        keys = [k for _, k in store.batch_keys()]  # type: ignore[attr-defined]
        moto_server.client("s3").delete_object(Bucket=store.bucket, Key=keys[-1])  # type: ignore[attr-defined]
        moto_server.client("s3").delete_object(Bucket=store.bucket, Key=store.prefix + "head.json")  # type: ignore[attr-defined]
    else:
        conn = store.connect()  # type: ignore[attr-defined]
        conn.execute("DELETE FROM tfaudit_records WHERE seq > (SELECT max(seq) - 3 FROM tfaudit_records)")


def test_any_runner_anchors_with_a_proof_from_the_last(shared: tuple[str, dict[str, str]], tmp_path: Path,
                                                         moto_server: Any, run_tfaudit: Callable[..., Any]) -> None:
    url, aws = shared
    env = {**os.environ, **aws}
    priv, pub = generate_keypair(tmp_path / "secret" / "signing-key")
    signer = load_signer(priv)
    where = str(tmp_path / "checkpoints")
    settings = resolve_settings(where, env, Config())
    assert settings is not None
    sizes = []
    for runner in range(3):  # three machines: a fresh store object each, nothing cached between them
        store = open_store(url, env)
        add_run(store, signer, time="2026-03-01T00:00:00.000000Z", workspace=f"ws{runner}",
                resources=[Res("terraform_data.a")])
        done = anchor(store, signer, settings, env)
        assert done.checkpoint is not None and not done.failed
        sizes.append(done.checkpoint.size)
    assert sizes == [3, 6, 9]
    proofs = sorted(Path(where).glob("*.consistency.json"))
    assert [json.loads(p.read_text())["from_size"] for p in proofs] == [3, 6]

    res = run_tfaudit("verify", url, "--public-key", str(pub), "--checkpoints", where, env=aws)
    assert res.returncode == 0 and "extends all 3 checkpoint(s)" in res.stdout, res.output
    _cut_last_batch(url, env, moto_server)
    res = run_tfaudit("verify", url, "--public-key", str(pub), "--checkpoints", where, env=aws)
    assert res.returncode == 1 and "truncat" in res.stdout.lower(), res.output
