"""The CLI surface: keygen, verify's errors, usage errors, and the internal-error path."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from conftest import CliResult
from tfaudit.cli import app as cli_app


def test_keygen_writes_private_0600_and_public(tmp_path: Path, run_tfaudit: Callable[..., CliResult]) -> None:
    r = run_tfaudit("keygen", str(tmp_path / "k"))
    assert r.returncode == 0, r.output
    assert (tmp_path / "k").stat().st_mode & 0o777 == 0o600
    assert (tmp_path / "k.pub").read_text().startswith("-----BEGIN PUBLIC KEY-----")
    assert "key id:      sha256:" in r.stdout
    again = run_tfaudit("keygen", str(tmp_path / "k"))
    assert again.returncode == 64 and "a key already exists" in again.stderr


def test_verify_needs_a_key_and_an_existing_ledger(tmp_path: Path, run_tfaudit: Callable[..., CliResult],
                                                   keypair: tuple[Path, Path]) -> None:
    (tmp_path / "l.jsonl").write_text("")
    r = run_tfaudit("verify", str(tmp_path / "l.jsonl"))
    assert r.returncode == 64 and "--public-key" in r.stderr
    r2 = run_tfaudit("verify", str(tmp_path / "absent.jsonl"), "--public-key", str(keypair[1]))
    assert r2.returncode == 64 and "does not exist" in r2.stderr
    r3 = run_tfaudit("verify", str(tmp_path / "l.jsonl"), "--public-key", str(tmp_path / "l.jsonl"))
    assert r3.returncode == 64 and "not a PEM or DER public key" in r3.stderr
    r4 = run_tfaudit("verify", str(tmp_path / "l.jsonl"), "--public-key", str(keypair[1]))
    assert r4.returncode == 1 and "the ledger is empty" in r4.stdout


def test_usage_errors_exit_64(run_tfaudit: Callable[..., CliResult]) -> None:
    r = run_tfaudit("verfy")  # a typo of one of tfaudit's own commands (anything else is terraform's to answer)
    assert r.returncode == 64 and "tfaudit: error: No such command 'verfy'. Did you mean 'verify'?" in r.stderr
    r1 = run_tfaudit("log", "--limt", "3")
    assert r1.returncode == 64 and "tfaudit: error:" in r1.stderr and "--limit" in r1.stderr
    r2 = run_tfaudit("--log-format", "xml", "verify")
    assert r2.returncode == 64


def test_internal_error_is_one_line_exit_3(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
                                           tmp_path: Path) -> None:
    def boom(*a: object, **k: object) -> None:
        raise RuntimeError("kaboom")

    monkeypatch.setattr("tfaudit.trail.signing.generate_keypair", boom)
    rc = cli_app.main(["keygen", str(tmp_path / "k")])
    err = capsys.readouterr().err
    assert rc == 3
    assert "internal error: RuntimeError: kaboom" in err and "--verbose" in err
    assert "Traceback" not in err
    rc = cli_app.main(["--verbose", "keygen", str(tmp_path / "k")])
    assert rc == 3 and "Traceback" in capsys.readouterr().err


def test_version(run_tfaudit: Callable[..., CliResult]) -> None:
    from tfaudit import __version__

    r = run_tfaudit("--version")
    assert r.returncode == 0 and r.stdout.strip() == f"tfaudit {__version__}"
