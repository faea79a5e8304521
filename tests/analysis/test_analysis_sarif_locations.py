"""SARIF results sit on the `.tf` line of the resource block that produced them, checked against the files.

A real configuration (a root module, a local module, and a module terraform init copies into
`.terraform/modules/`), really applied and planned by terraform; the plan stays a related location.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from conftest import CliResult, require_terraform
from analysis.test_analysis_outputs import assert_valid_sarif
from tfaudit.analysis.locate import ConfigLocator, split_address

APP = 'variable "n" { type = number }\n\n# the application\nresource "terraform_data" "app" {\n  count = var.n\n  input = "app"\n}\n'
VENDOR = 'variable "n" { type = number }\nresource "terraform_data" "v" {\n  count = var.n\n  input = "v"\n}\n'
ROOT = '''variable "n" {
  type    = number
  default = 2
}

module "local_mod" {
  source = "./modules/app"
  n      = var.n
}

module "vendored" {
  source = "%s"
  n      = var.n
}

resource "terraform_data" "keep" {
  count = var.n
  input = "x"
}
'''


def test_addresses_split_into_module_calls_type_and_name() -> None:
    assert split_address('module.a["x.y"].module.b[0].aws_s3_bucket.c["k"]') == (("a", "b"), "resource", "aws_s3_bucket", "c")
    assert split_address("data.aws_iam_policy_document.p") == ((), "data", "aws_iam_policy_document", "p")
    assert split_address("not an address") is None


def test_before_init_a_local_module_source_is_followed(tmp_path: Path) -> None:
    (tmp_path / "modules" / "app").mkdir(parents=True)
    (tmp_path / "modules" / "app" / "main.tf").write_text(APP)
    (tmp_path / "main.tf").write_text('module "local_mod" {\n  source = "./modules/app"\n  n = 1\n}\n')
    loc = ConfigLocator(tmp_path).locate("module.local_mod.terraform_data.app[0]")
    assert loc is not None and loc.file == tmp_path / "modules" / "app" / "main.tf" and loc.line == 4


@pytest.mark.slow
@pytest.mark.terraform
def test_sarif_results_point_at_the_resource_block_line(
        tmp_path: Path, base_env: dict[str, str], run_tfaudit: Callable[..., CliResult]) -> None:
    tf = require_terraform()
    repo = tmp_path / "repo"
    root = repo / "infra"
    (root / "modules" / "app").mkdir(parents=True)
    (root / "modules" / "app" / "main.tf").write_text(APP)
    vendor = tmp_path / "vendor"
    vendor.mkdir()
    (vendor / "main.tf").write_text(VENDOR)
    (root / "main.tf").write_text(ROOT % vendor)
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    env = {**base_env, "TFAUDIT_SIGNING_KEY": ""}
    for argv in (["init", "-input=false"], ["apply", "-auto-approve", "-input=false"],
                 ["plan", "-input=false", "-var", "n=1", "-out=plan.tfplan"]):
        res = subprocess.run([tf, *argv], cwd=root, env=env, capture_output=True, text=True, timeout=300)
        assert res.returncode == 0, res.stdout + res.stderr
    out = run_tfaudit("analyze", "--format", "sarif", "plan.tfplan", cwd=root)
    assert out.returncode == 0, out.output
    doc: dict[str, Any] = json.loads(out.stdout)
    assert_valid_sarif(doc)
    run = doc["runs"][0]
    assert run["originalUriBaseIds"]["%SRCROOT%"]["uri"] == repo.resolve().as_uri() + "/"
    by_address = {r["locations"][0]["logicalLocations"][0]["fullyQualifiedName"]: r for r in run["results"]}
    assert set(by_address) == {"terraform_data.keep[1]", "module.local_mod.terraform_data.app[1]",
                               "module.vendored.terraform_data.v[1]"}
    expected = {  # address -> (file in the repository, the text of the line the result points at)
        "terraform_data.keep[1]": ("infra/main.tf", 'resource "terraform_data" "keep" {'),
        "module.local_mod.terraform_data.app[1]": ("infra/modules/app/main.tf", 'resource "terraform_data" "app" {'),
        # a downloaded module's files are not in the repository: the module call that brings it in
        "module.vendored.terraform_data.v[1]": ("infra/main.tf", 'module "vendored" {'),
    }
    for address, (uri, text) in expected.items():
        loc = by_address[address]["locations"][0]["physicalLocation"]
        assert loc["artifactLocation"]["uri"] == uri, address
        assert loc["artifactLocation"]["uriBaseId"] == "%SRCROOT%"
        line = loc["region"]["startLine"]
        assert (repo / uri).read_text().splitlines()[line - 1] == text, (address, line)
        assert run["artifacts"][loc["artifactLocation"]["index"]]["location"]["uri"] == uri
        related = by_address[address]["relatedLocations"][0]["physicalLocation"]["artifactLocation"]
        assert related == {"uri": "plan.tfplan", "index": 0}
    assert run["artifacts"][0]["location"]["uri"] == "plan.tfplan"
    assert os.path.exists(root / ".terraform" / "modules" / "modules.json")
