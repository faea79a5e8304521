"""tfaudit history over several real terraform runs: who changed a resource, when, and did it work."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from conftest import CliResult, require_terraform

pytestmark = [pytest.mark.slow, pytest.mark.terraform]

CONFIG = """
variable "gen" {
  type    = number
  default = 1
}
variable "fail" {
  type    = bool
  default = false
}
resource "terraform_data" "%(name)s" {
  input            = { gen = var.gen }
  triggers_replace = [var.fail]
  provisioner "local-exec" {
    command = var.fail ? "echo 'disk quota exceeded' >&2; exit 3" : "true"
  }
}
resource "terraform_data" "other" {
  input = var.gen
}
%(moved)s
"""


@pytest.fixture(scope="module")
def trail(tmp_path_factory: pytest.TempPathFactory, base_env: dict[str, str]) -> dict[str, Any]:
    """Four runs by three people: create, update, a failed replace, then a rename (moved block)."""
    import subprocess
    import sys

    from tfaudit.trail.signing import generate_keypair

    require_terraform()
    work = tmp_path_factory.mktemp("history") / "cfg"
    work.mkdir()
    key, _ = generate_keypair(work.parent / "key")

    def apply(actor: str, *args: str, name: str = "db", moved: str = "") -> int:
        (work / "main.tf").write_text(CONFIG % {"name": name, "moved": moved})
        env = {**base_env, "TFAUDIT_SIGNING_KEY": str(key), "TFAUDIT_ACTOR": actor}
        res = subprocess.run([sys.executable, "-m", "tfaudit", "apply", "-auto-approve", *args], cwd=work, env=env,
                             capture_output=True, text=True, timeout=300)
        return res.returncode

    assert apply("alice") == 0
    assert apply("bob", "-var", "gen=2") == 0
    assert apply("carol", "-var", "gen=3", "-var", "fail=true") == 1  # the provisioner fails the replace
    assert apply("alice", "-var", "gen=4", name="database",
                 moved="moved {\n  from = terraform_data.db\n  to   = terraform_data.database\n}\n") == 0
    return {"work": work, "ledger": work / ".tfaudit" / "ledger.jsonl"}


def test_who_when_what_and_whether_it_worked(trail: dict[str, Any], run_tfaudit: Callable[..., CliResult]) -> None:
    res = run_tfaudit("history", "terraform_data.database", cwd=trail["work"])
    assert res.returncode == 0, res.output
    lines = res.stdout.splitlines()
    entries = [line for line in lines if re.match(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\dZ  ", line)]
    # newest first: alice's rename, carol's failed replace, bob's update, alice's create
    assert [e.split()[2] for e in entries] == ["alice", "carol", "bob", "alice"]
    assert "terraform_data.database" in entries[0] and "(moved from terraform_data.db)" in entries[0]
    assert "replace terraform_data.db  FAILED" in entries[1]
    assert "update terraform_data.db  succeeded" in entries[2]
    assert "create terraform_data.db  succeeded" in entries[3]
    assert any("error: " in line and "disk quota exceeded" in line for line in lines)
    assert any(line.strip() == "changed: input.gen, output" for line in lines)
    assert lines[-1] == "4 change(s) in 4 run(s); 1 failed"


def test_json_answers_the_same_questions(trail: dict[str, Any], run_tfaudit: Callable[..., CliResult]) -> None:
    res = run_tfaudit("history", "terraform_data.database", "--ledger", str(trail["ledger"]), "--format", "json")
    assert res.returncode == 0, res.output
    changes = json.loads(res.stdout)
    assert [(c["actor"], c["action"], c["status"]) for c in changes] == [
        ("alice", "replace", "succeeded"), ("carol", "replace", "failed"), ("bob", "update", "succeeded"),
        ("alice", "create", "succeeded")]
    assert changes[0]["previous_address"] == "terraform_data.db"
    assert changes[1]["run_status"] == "partial" or changes[1]["run_status"] == "failed"
    assert changes[2]["before"]["input"] == {"gen": 1} and changes[2]["after"]["input"] == {"gen": 2}
    assert all(re.match(r"^\d{4}-\d\d-\d\dT", c["time"]) for c in changes)
    assert len({c["run_id"] for c in changes}) == 4


def test_old_address_globs_and_unknown_addresses(trail: dict[str, Any], run_tfaudit: Callable[..., CliResult]) -> None:
    ledger = str(trail["ledger"])
    old = json.loads(run_tfaudit("history", "terraform_data.db", "--ledger", ledger, "--format", "json").stdout)
    assert [c["actor"] for c in old] == ["carol", "bob", "alice"]  # before the move only
    every = json.loads(run_tfaudit("history", "terraform_data.*", "--ledger", ledger, "--format", "json").stdout)
    assert {c["address"] for c in every} == {"terraform_data.db", "terraform_data.database", "terraform_data.other"}
    res = run_tfaudit("history", "aws_s3_bucket.nope", "--ledger", ledger)
    assert res.returncode == 0 and res.stdout.strip() == "no recorded changes to aws_s3_bucket.nope"
    values = run_tfaudit("history", "terraform_data.other", "--ledger", ledger, "--values").stdout
    assert 'input: 1 -> 2' in values
