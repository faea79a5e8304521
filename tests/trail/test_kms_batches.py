"""AWS KMS signing costs one `Sign` call per append, whatever the number of resources.

Real terraform (`terraform_data`, no provider download), the session's moto server as AWS KMS,
and tfaudit run as a user runs it. moto's KMS hashes a DIGEST message again (ENVIRONMENT.md):
the server is patched in this process to sign it as AWS KMS does (tests/sinks_support.py), and
the patch counts the `Sign` calls the server answers.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from conftest import CliResult, MotoServer, require_terraform
from sinks_support import kms_digest_patch, run_records

pytestmark = [pytest.mark.slow]


@pytest.fixture
def sign_calls(moto_server: MotoServer, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The KeyId of every `Sign` request the moto server answers while the test runs."""
    cls, attr, sign = kms_digest_patch()
    calls: list[str] = []

    def counted(self: Any) -> str:
        calls.append(self._get_param("KeyId"))
        return sign(self)  # type: ignore[no-any-return]

    monkeypatch.setattr(cls, attr, counted)
    return calls


@pytest.fixture
def env(moto_server: MotoServer, tmp_path: Path) -> dict[str, str]:
    return {**moto_server.aws_env(), "XDG_CACHE_HOME": str(tmp_path / "cache")}


def _project(work: Path, alias: str, resources: int, base_env: dict[str, str]) -> Path:
    work.mkdir(parents=True)
    (work / "main.tf").write_text(f'resource "terraform_data" "r" {{\n  count = {resources}\n  input = count.index\n}}\n')
    (work / ".tfaudit.hcl").write_text(f'signing {{\n  signer     = "kms"\n  kms_key_id = "{alias}"\n}}\n')
    res = subprocess.run([require_terraform(), "init", "-input=false", "-no-color"], cwd=work, env=base_env,
                         capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stdout + res.stderr
    return work


def _public_key(run_tfaudit: Callable[..., CliResult], alias: str, env: dict[str, str], out: Path) -> Path:
    res = run_tfaudit("kms-pubkey", "--kms-key-id", alias, "--out", str(out), env=env)
    assert res.returncode == 0, res.output
    return out


@pytest.mark.terraform
def test_an_apply_makes_two_sign_calls_whatever_its_size_and_verifies(
        sign_calls: list[str], kms_alias: str, env: dict[str, str], tmp_path: Path, base_env: dict[str, str],
        run_tfaudit: Callable[..., CliResult]) -> None:
    pub = _public_key(run_tfaudit, kms_alias, env, tmp_path / "kms.pub")
    calls: dict[int, int] = {}
    for n in (2, 120):
        work = _project(tmp_path / f"n{n}", kms_alias, n, base_env)
        before = len(sign_calls)
        res = run_tfaudit("apply", "-auto-approve", cwd=work, env=env)
        assert res.returncode == 0, res.output[-3000:]
        assert f"Apply complete! Resources: {n} added" in res.stdout
        calls[n] = len(sign_calls) - before
        ledger = work / ".tfaudit" / "ledger.jsonl"
        ok = run_tfaudit("verify", str(ledger), "--public-key", str(pub))
        assert ok.returncode == 0 and f"OK: {n + 2} records in 1 runs verified" in ok.stdout, ok.output
    # run.started before terraform applies, then the resources and run.finished: one KMS call each
    assert calls == {2: 2, 120: 2}
    # and each record still verifies alone: a record edited in the middle is the only line reported
    lines = ledger.read_bytes().splitlines(keepends=True)
    lines[60] = lines[60].replace(b'"terraform_data.r', b'"terraform_data.x', 1)
    ledger.write_bytes(b"".join(lines))
    bad = run_tfaudit("verify", str(ledger), "--public-key", str(pub))
    assert bad.returncode == 1 and f"{ledger}:61: bad_signature: signature does not match the record" in bad.stdout
    assert "1 problem(s)" in bad.stdout or bad.stdout.count("bad_signature") == 1, bad.stdout


def test_ledger_repair_signs_with_kms(sign_calls: list[str], kms_alias: str, env: dict[str, str], tmp_path: Path,
                                      run_tfaudit: Callable[..., CliResult]) -> None:
    from tfaudit.trail.kms import KmsSigner
    from tfaudit.trail.ledger import Ledger

    work = tmp_path / "w"
    work.mkdir()
    (work / ".tfaudit.hcl").write_text(f'signing {{\n  signer     = "kms"\n  kms_key_id = "{kms_alias}"\n}}\n')
    ledger = work / "ledger.jsonl"
    signer = KmsSigner.from_config({"kms_key_id": kms_alias}, env)
    Ledger(ledger).append(run_records([("terraform_data.a", "create", "succeeded")]), signer)
    ledger.write_bytes(ledger.read_bytes() + b'{"schema":"tfaudit.rec')
    before = len(sign_calls)
    res = run_tfaudit("ledger", "repair", "--ledger", str(ledger), cwd=work, env=env)
    assert res.returncode == 0 and "ledger.repaired at line 4" in res.stdout, res.output
    assert len(sign_calls) - before == 1
    pub = _public_key(run_tfaudit, kms_alias, env, tmp_path / "kms.pub")
    ok = run_tfaudit("verify", str(ledger), "--public-key", str(pub), "--json")
    doc = json.loads(ok.stdout)
    assert ok.returncode == 0 and doc["problems"] == [] and len(doc["repairs"]) == 1, ok.output


@pytest.mark.parametrize("store", ["s3", "postgresql"])
def test_shared_stores_append_kms_signed_batches(store: str, sign_calls: list[str], kms_alias: str,
                                                 env: dict[str, str], request: pytest.FixtureRequest,
                                                 run_tfaudit: Callable[..., CliResult], tmp_path: Path) -> None:
    from tfaudit.trail.kms import KmsSigner
    from tfaudit.trail.store import open_store

    url = request.getfixturevalue("s3_ledger_url" if store == "s3" else "pg_url")
    signer = KmsSigner.from_config({"kms_key_id": kms_alias}, env)
    ledger = open_store(url, env)
    if store == "postgresql":
        ledger.init()  # type: ignore[attr-defined]  # 'tfaudit ledger init' once per database
    before = len(sign_calls)
    for i in range(2):
        ledger.append(run_records([(f"terraform_data.r{j}", "create", "succeeded") for j in range(30)]), signer)
    assert len(sign_calls) - before == 2
    pub = _public_key(run_tfaudit, kms_alias, env, tmp_path / "kms.pub")
    ok = run_tfaudit("verify", url, "--public-key", str(pub), env=env)
    assert ok.returncode == 0 and "OK: 64 records in 2 runs verified" in ok.stdout, ok.output
