"""`.tfaudit.hcl`: what is accepted, and the errors a user sees for what is not."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from conftest import CliResult
from tfaudit.config import parse_config
from tfaudit.errors import ConfigError


def _write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / ".tfaudit.hcl"
    p.write_text(text)
    return p


def test_core_blocks_parse(tmp_path: Path) -> None:
    cfg = parse_config(_write(tmp_path, '''
ledger {
  path = "audit/ledger.jsonl"
}
signing {
  key = "keys/signing-key"
}
redact {
  names  = ["^pin$"]
  values = ["corp-[0-9a-f]{8}"]
}
identity {
  user = "deploy-bot"
  git  = false
}
'''))
    assert cfg.ledger.path == tmp_path / "audit" / "ledger.jsonl"
    assert cfg.signing.key == tmp_path / "keys" / "signing-key"
    assert cfg.redact.names == ("^pin$",)
    assert cfg.identity.user == "deploy-bot" and cfg.identity.git is False and cfg.identity.ci is True


@pytest.mark.parametrize(("text", "message"), [
    ('ledger {\n  paht = "x"\n}\n', "block ledger: unknown key 'paht'"),
    ('ledgr {\n  path = "x"\n}\n', "unknown block or setting 'ledgr'"),
    ('identity {\n  git = "yes"\n}\n', "block identity: git must be true or false"),
    ('redact {\n  names = ["("]\n}\n', "block redact: '(' is not a valid regular expression"),
    ('signing {\n  signer = "rsa"\n}\n', 'block signing: signer must be "ed25519" or "kms"'),
    ('ledger {\n  path = \n}\n', "not valid HCL at line"),
    ('ledger {\n path = "a"\n}\nledger {\n path = "b"\n}\n', "block ledger: may appear only once"),
])
def test_bad_config_names_file_and_block(tmp_path: Path, text: str, message: str) -> None:
    path = _write(tmp_path, text)
    with pytest.raises(ConfigError) as exc:
        parse_config(path)
    assert message in str(exc.value)
    assert str(path) in str(exc.value)
    assert "\n" not in str(exc.value)


def test_config_validate_cli(tmp_path: Path, run_tfaudit: Callable[..., CliResult]) -> None:
    _write(tmp_path, 'ledger {\n  path = "l.jsonl"\n}\n')
    ok = run_tfaudit("config", "validate", cwd=tmp_path)
    assert ok.returncode == 0 and "valid (ledger)" in ok.stdout
    _write(tmp_path, 'ledger {\n  nope = 1\n}\n')
    bad = run_tfaudit("config", "validate", cwd=tmp_path)
    assert bad.returncode == 64
    assert bad.stderr.startswith("tfaudit: error: ") and "unknown key 'nope'" in bad.stderr
    assert bad.stderr.count("\n") == 1
    missing = run_tfaudit("config", "validate", str(tmp_path / "absent.hcl"), cwd=tmp_path)
    assert missing.returncode == 64 and "does not exist" in missing.stderr


def test_config_validate_checks_waivers_against_known_rules(tmp_path: Path,
                                                           run_tfaudit: Callable[..., CliResult]) -> None:
    _write(tmp_path, 'waiver {\n  rule = "no.such.rule"\n  address = "a.b"\n  reason = "r"\n'
                     '  expires = "2099-01-01"\n}\n')
    r = run_tfaudit("config", "validate", cwd=tmp_path)
    assert r.returncode == 64
    assert "rule 'no.such.rule' is neither a built-in nor a custom rule id" in r.stderr
