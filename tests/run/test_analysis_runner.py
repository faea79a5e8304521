"""Findings inside tfaudit apply/plan, and gates that stop an apply before terraform applies anything."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from conftest import CliResult, read_ledger, require_terraform

pytestmark = [pytest.mark.slow, pytest.mark.terraform]

DENY_DELETES = '''
rule "keep-extra" {
  message   = "terraform_data.extra is kept"
  severity  = "high"
  effect    = "deny"
  actions   = ["delete", "replace"]
  addresses = ["terraform_data.extra[*]"]
}
'''


@pytest.fixture
def work(tf_workdir: Callable[[str], Path], keypair: tuple[Path, Path], run_tfaudit: Callable[..., CliResult],
         base_env: dict[str, str]) -> dict[str, Any]:
    path = tf_workdir("e2e")
    priv, _ = keypair

    def tfaudit(*args: str, **kw: Any) -> CliResult:
        return run_tfaudit(*args, cwd=path, env={"TFAUDIT_SIGNING_KEY": str(priv), **kw.pop("env", {})}, **kw)

    def state() -> dict[str, Any]:
        res = subprocess.run([require_terraform(), "state", "pull"], cwd=path, env=base_env, capture_output=True,
                             text=True, timeout=60)
        return json.loads(res.stdout)

    assert tfaudit("apply", "-auto-approve").returncode == 0
    return {"path": path, "tfaudit": tfaudit, "state": state, "ledger": path / ".tfaudit" / "ledger.jsonl"}


def test_a_deny_rule_stops_the_apply_before_it_starts(work: dict[str, Any]) -> None:
    (work["path"] / ".tfaudit.hcl").write_text(DENY_DELETES)
    before = work["state"]()
    res = work["tfaudit"]("apply", "-var", "extra=false", input="yes\n")  # even a user who would approve
    assert res.returncode == 5, res.output
    assert "Do you want to perform these actions" not in res.stdout  # never asked
    assert res.stderr.splitlines()[-1] == (
        "tfaudit: error: blocked by policy: denied by rule keep-extra: terraform_data.extra[0]: terraform_data.extra "
        "is kept (nothing was applied; fix the plan, or change the rule, severity gate or waiver in .tfaudit.hcl)")
    after = work["state"]()
    assert after["serial"] == before["serial"] and after["lineage"] == before["lineage"]
    assert any(r["type"] == "terraform_data" and r["name"] == "extra" for r in after["resources"])
    started, finished = read_ledger(work["ledger"])[-2:]
    assert started["type"] == "run.started" and finished["type"] == "run.finished"
    assert started["run"]["id"] == finished["run"]["id"]
    assert [(f["rule"], f["effect"]) for f in started["findings"]] == [("keep-extra", "deny"), ("destroy.delete", "warn")]
    assert finished["outcome"]["status"] == "blocked" and finished["outcome"]["exit_code"] == 5
    assert finished["outcome"]["reason"] == "denied by rule keep-extra: terraform_data.extra[0]: terraform_data.extra is kept"
    assert finished["outcome"]["state"]["after"] == finished["outcome"]["state"]["before"]


def test_fail_on_blocks_apply_and_plan_exits_5_after_recording(work: dict[str, Any]) -> None:
    tfaudit = work["tfaudit"]
    res = tfaudit("apply", "-auto-approve", "-var", "rev=2", "--fail-on", "medium")
    assert res.returncode == 5, res.output
    assert "1 finding at or above medium (--fail-on): destroy.replace medium: terraform_data.replaced" in res.stderr
    assert read_ledger(work["ledger"])[-1]["outcome"]["status"] == "blocked"

    res = tfaudit("plan", "-var", "rev=2", env={"TFAUDIT_FAIL_ON": "medium"})
    assert res.returncode == 5, res.output
    rec = read_ledger(work["ledger"])[-1]
    assert rec["type"] == "plan.recorded"
    assert [(f["rule"], f["address"]) for f in rec["findings"]] == [("destroy.replace", "terraform_data.replaced")]
    assert tfaudit("plan", "-var", "rev=2", "--fail-on", "high").returncode == 0


def test_findings_go_into_run_started_and_each_changed_resource(work: dict[str, Any]) -> None:
    res = work["tfaudit"]("apply", "-auto-approve", "-var", "rev=2", "-var", "extra=false", "-var", "gen=2")
    assert res.returncode == 0, res.output
    recs = read_ledger(work["ledger"])
    run_id = [r for r in recs if r["type"] == "run.started"][-1]["run"]["id"]
    started = next(r for r in recs if r["type"] == "run.started" and r["run"]["id"] == run_id)
    assert {(f["rule"], f["address"], f["severity"]) for f in started["findings"]} == {
        ("destroy.replace", "terraform_data.replaced", "medium"), ("destroy.delete", "terraform_data.extra[0]", "medium")}
    resources = {r["resource"]["address"]: r["resource"] for r in recs
                 if r["type"] == "resource.changed" and r["run"]["id"] == run_id}
    assert [f["rule"] for f in resources["terraform_data.replaced"]["findings"]] == ["destroy.replace"]
    assert [f["rule"] for f in resources["terraform_data.extra[0]"]["findings"]] == ["destroy.delete"]
    assert "findings" not in resources["terraform_data.updated"]  # an update in place is not risky
    assert all(r["resource"]["status"] == "succeeded" for r in recs if r["run"]["id"] == run_id and "resource" in r)
