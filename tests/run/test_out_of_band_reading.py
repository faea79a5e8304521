"""Every reading shows changes made outside tfaudit: a plain `terraform apply` that changes one resource
and deletes another is named, resource by resource, by `history` (in time order) and by `report`."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from conftest import CliResult, require_terraform

pytestmark = [pytest.mark.slow, pytest.mark.terraform]

CONFIG = '''variable "gen" {
  type    = number
  default = 1
}

resource "terraform_data" "app" {
  count = 2
  input = "app-${count.index}"
}

resource "terraform_data" "db" {
  input = "db-${var.gen}"
}
'''
CACHE = '''
resource "terraform_data" "cache" {
  input = "cache"
}
'''


@pytest.fixture
def outside(tmp_path: Path, base_env: dict[str, str], keypair: tuple[Path, Path],
            run_tfaudit: Callable[..., CliResult]) -> dict[str, Any]:
    tf = require_terraform()
    wd = tmp_path / "infra"
    wd.mkdir()
    (wd / "main.tf").write_text(CONFIG + CACHE)
    env = {"TFAUDIT_SIGNING_KEY": str(keypair[0])}

    def terraform(*args: str) -> None:
        res = subprocess.run([tf, *args], cwd=wd, env=base_env, capture_output=True, text=True, timeout=300)
        assert res.returncode == 0, res.stdout + res.stderr

    def tfa(*args: str) -> CliResult:
        return run_tfaudit(*args, cwd=wd, env=env)

    terraform("init", "-input=false")
    assert tfa("apply", "-auto-approve", "-input=false").returncode == 0
    # outside tfaudit: db changes, cache is deleted
    (wd / "main.tf").write_text(CONFIG)
    terraform("apply", "-auto-approve", "-input=false", "-var", "gen=2")
    # the next tfaudit run sees it
    res = tfa("plan", "-input=false", "-var", "gen=2")
    assert res.returncode == 0, res.output
    assert "state changed outside tfaudit" in res.stderr
    return {"tfa": tfa, "pub": keypair[1], "dir": wd}


def test_history_shows_each_outside_change_as_out_of_band(outside: dict[str, Any]) -> None:
    tfa = outside["tfa"]
    db = json.loads(tfa("history", "terraform_data.db", "--format", "json").stdout)
    assert [(c["action"], c["out_of_band"], c["status"]) for c in db] == [
        ("update", True, "out_of_band"), ("create", False, "succeeded")]  # newest first: time order
    assert db[0]["actor"] == "(unknown)" and db[0]["command"] == "outside tfaudit"
    cache = json.loads(tfa("history", "terraform_data.cache", "--format", "json").stdout)
    assert [(c["action"], c["out_of_band"]) for c in cache] == [("delete", True), ("create", False)]
    text = tfa("history", "terraform_data.cache").stdout
    assert "OUTSIDE TFAUDIT in default: delete terraform_data.cache" in text.splitlines()[0]
    assert "1 made outside tfaudit" in text
    # no index: every instance, as in terraform; app was not touched outside tfaudit
    app = json.loads(tfa("history", "terraform_data.app", "--format", "json").stdout)
    assert sorted(c["address"] for c in app) == ["terraform_data.app[0]", "terraform_data.app[1]"]
    assert not any(c["out_of_band"] for c in app)


def test_report_lists_outside_changes_and_says_what_it_cannot_see(outside: dict[str, Any], tmp_path: Path) -> None:
    tfa = outside["tfa"]
    doc = json.loads(tfa("report", "--format", "json", "--public-key", str(outside["pub"])).stdout)
    (entry,) = doc["out_of_band"]
    assert (entry["changed"], entry["removed"], entry["added"]) == (["terraform_data.db"], ["terraform_data.cache"], [])
    assert doc["verification"][0]["state"] == "verified"
    text = tfa("report", "--public-key", str(outside["pub"])).stdout
    assert "changed outside tfaudit: 1" in text
    assert "changed terraform_data.db; deleted terraform_data.cache" in text
    out = tmp_path / "r.html"
    assert tfa("report", "--html", str(out), "--public-key", str(outside["pub"])).returncode == 0
    page = out.read_text()
    assert "Changed outside tfaudit" in page and "<code>terraform_data.cache</code>" in page
    assert "every ledger verified</span> (<span class=\"warn\">1 change(s) made outside tfaudit" in page


def test_an_unchanged_state_is_parsed_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The state after a run that changed nothing is the state before: same bytes, same State."""
    from tfaudit.run.outofband import read_state
    from tfaudit.terraform.binary import Terraform

    def write(serial: int) -> None:
        doc = {"version": 4, "terraform_version": "1.11.4", "serial": serial, "lineage": "l-1", "outputs": {},
               "resources": [], "check_results": None}
        (tmp_path / "terraform.tfstate").write_text(json.dumps(doc, indent=2) + "\n")

    monkeypatch.chdir(tmp_path)
    tf = Terraform("/nonexistent/terraform", "terraform", "1.11.4", None, {})  # never started: the file is read
    write(3)
    known, first = read_state(tf)
    assert known and first is not None and first.serial == 3
    assert read_state(tf)[1] is first
    write(4)
    again = read_state(tf)[1]
    assert again is not None and again is not first and again.serial == 4
