"""The session's resolvers: which ledger, which key (narrow unit tests; no terraform)."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import pytest

from tfaudit.config import Config
from tfaudit.errors import ExitCode, UsageError
from tfaudit.run.session import Invocation, resolve_ledger, resolve_signer
from tfaudit.ui.console import Console


def _console() -> Console:
    return Console(out=io.StringIO(), err=io.StringIO(), read_line=lambda: "")


@pytest.mark.parametrize("ci_env", [{"GITHUB_ACTIONS": "true"}, {"GITLAB_CI": "true"}, {"CI": "true"}])
def test_ci_without_a_configured_key_is_refused_not_given_a_throwaway_key(tmp_path: Path, ci_env: dict[str, str]) -> None:
    env = {"XDG_CONFIG_HOME": str(tmp_path / "cfg"), **ci_env}
    with pytest.raises(UsageError) as e:
        resolve_signer(Invocation("apply"), Config(), env, _console())
    assert e.value.exit_code == ExitCode.USAGE == 64
    assert "TFAUDIT_SIGNING_KEY" in str(e.value) and "kms" in str(e.value).lower()
    assert not (tmp_path / "cfg").exists()  # no key was written


def test_outside_ci_a_key_is_created_on_first_use(tmp_path: Path) -> None:
    console = _console()
    signer = resolve_signer(Invocation("apply"), Config(), {"XDG_CONFIG_HOME": str(tmp_path)}, console)
    assert (tmp_path / "tfaudit" / "signing-key").is_file() and signer.key_id.startswith("sha256:")
    assert "created a signing key" in console.err.getvalue()  # type: ignore[attr-defined]


def test_ci_with_an_existing_key_uses_it(tmp_path: Path) -> None:
    resolve_signer(Invocation("apply"), Config(), {"XDG_CONFIG_HOME": str(tmp_path)}, _console())
    signer = resolve_signer(Invocation("apply"), Config(), {"XDG_CONFIG_HOME": str(tmp_path), "CI": "1"}, _console())
    assert signer.key_id.startswith("sha256:")


def test_the_ledger_follows_chdir_for_writing_and_reading_commands(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    work = tmp_path / "infra"
    work.mkdir()
    monkeypatch.chdir(tmp_path)
    store = resolve_ledger(None, chdir="infra", config_path=None, env={})
    assert store.local_path == work / ".tfaudit" / "ledger.jsonl"
    assert resolve_ledger(None, chdir=None, config_path=None, env={}).local_path == tmp_path / ".tfaudit" / "ledger.jsonl"
    given = resolve_ledger("x.jsonl", chdir="infra", config_path=None, env={"TFAUDIT_LEDGER": "y.jsonl"})
    assert given.local_path == tmp_path / "x.jsonl"  # --ledger, relative to where tfaudit runs
    assert resolve_ledger(None, chdir="infra", config_path=None, env={"TFAUDIT_LEDGER": "y.jsonl"}).local_path == tmp_path / "y.jsonl"
    (work / ".tfaudit.hcl").write_text('ledger {\n  path = "audit/trail.jsonl"\n}\n')
    assert resolve_ledger(None, chdir="infra", config_path=None, env={}).local_path == work / "audit" / "trail.jsonl"


def test_reading_commands_find_the_ledger_of_chdir(tmp_path: Path, run_tfaudit: Any) -> None:
    from trail_factory import Res, add_run

    from tfaudit.trail.signing import generate_keypair, load_signer

    key, pub = generate_keypair(tmp_path / "k" / "key")
    add_run(tmp_path / "infra" / ".tfaudit" / "ledger.jsonl", load_signer(key), time="2026-01-01T00:00:00Z",
            resources=[Res("terraform_data.a")])
    log = run_tfaudit("-chdir=infra", "log", cwd=tmp_path)
    assert log.returncode == 0, log.output
    assert "terraform_data" in log.stdout or "1 succeeded" in log.stdout
    hist = run_tfaudit("-chdir=infra", "history", "terraform_data.a", cwd=tmp_path)
    assert hist.returncode == 0 and "terraform_data.a" in hist.stdout, hist.output
    ok = run_tfaudit("-chdir=infra", "verify", "--public-key", str(pub), cwd=tmp_path)
    assert ok.returncode == 0, ok.output
    missing = run_tfaudit("log", cwd=tmp_path)  # no -chdir: there is no ledger here
    assert missing.returncode == 64 and "no ledger given and none at" in missing.stderr
