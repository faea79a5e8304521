"""Plan-to-apply binding with real terraform: tfaudit apply PLANFILE links to the plan.recorded record,
and require_recorded_plan refuses (exit 5) a plan never recorded or changed since."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from conftest import CliResult, read_ledger

pytestmark = [pytest.mark.slow, pytest.mark.terraform]


@pytest.fixture
def work(tf_workdir: Callable[[str], Path], keypair: tuple[Path, Path],
         run_tfaudit: Callable[..., CliResult]) -> dict[str, Any]:
    d = tf_workdir("quickstart")
    env = {"TFAUDIT_SIGNING_KEY": str(keypair[0])}

    def tfa(*args: str) -> CliResult:
        return run_tfaudit(*args, cwd=d, env=env)

    return {"dir": d, "tfa": tfa, "ledger": d / ".tfaudit" / "ledger.jsonl", "pub": keypair[1]}


def _terraform_plan(d: Path, out: str, base_env: dict[str, str], *args: str) -> None:
    res = subprocess.run(["terraform", "plan", "-input=false", f"-out={out}", *args], cwd=d, env=base_env,
                         capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stdout + res.stderr


def test_apply_links_to_the_recorded_plan(work: dict[str, Any], run_tfaudit: Callable[..., CliResult]) -> None:
    tfa = work["tfa"]
    assert tfa("plan", "-out=plan.tfplan").returncode == 0
    res = tfa("apply", "plan.tfplan")
    assert res.returncode == 0, res.output
    recs = read_ledger(work["ledger"])
    plan_rec = next(r for r in recs if r["type"] == "plan.recorded")
    started = next(r for r in recs if r["type"] == "run.started")
    assert started["run"]["plan_sha256"] == plan_rec["plan"]["sha256"]
    link = started["plan"]["recorded_by"]
    assert link["id"] == plan_rec["id"] and link["seq"] == plan_rec["chain"]["seq"]
    assert link["run_id"] == plan_rec["run"]["id"]
    log = json.loads(tfa("log", "--format", "json").stdout)
    assert log[0]["plan_recorded_by"]["id"] == plan_rec["id"]
    assert tfa("verify", str(work["ledger"]), "--public-key", str(work["pub"])).returncode == 0


def test_unrecorded_plan_applies_unlinked_when_not_required(work: dict[str, Any], base_env: dict[str, str]) -> None:
    _terraform_plan(work["dir"], "raw.tfplan", base_env)
    res = work["tfa"]("apply", "raw.tfplan")
    assert res.returncode == 0, res.output
    started = next(r for r in read_ledger(work["ledger"]) if r["type"] == "run.started")
    assert started["plan"]["recorded_by"] is None


def test_required_refuses_unrecorded_and_changed_plans(work: dict[str, Any], base_env: dict[str, str]) -> None:
    d, tfa = work["dir"], work["tfa"]
    (d / ".tfaudit.hcl").write_text("require_recorded_plan = true\n")

    # never recorded: refused before terraform applies anything
    _terraform_plan(d, "raw.tfplan", base_env)
    res = tfa("apply", "raw.tfplan")
    assert res.returncode == 5, res.output
    assert "was never recorded by 'tfaudit plan'; require_recorded_plan refuses it" in res.stderr
    assert "Traceback" not in res.stderr
    assert not (d / "terraform.tfstate").exists()  # nothing applied

    # recorded, then replaced by another plan: refused, and the message says it changed
    assert tfa("plan", "-out=p.tfplan").returncode == 0
    _terraform_plan(d, "p.tfplan", base_env, "-var", "release=9")
    res = tfa("apply", "p.tfplan")
    assert res.returncode == 5
    assert "plan file p.tfplan changed since 'tfaudit plan' recorded it" in res.stderr
    assert not (d / "terraform.tfstate").exists()

    # both attempts are in the trail as blocked runs with a finding; the ledger verifies
    recs = read_ledger(work["ledger"])
    blocked = [r for r in recs if r["type"] == "run.finished" and r["outcome"]["status"] == "blocked"]
    assert len(blocked) == 2 and all(r["outcome"]["exit_code"] == 5 for r in blocked)
    starts = [r for r in recs if r["type"] == "run.started"]
    assert [f["rule"] for r in starts for f in r.get("findings", [])] == ["plan.unrecorded", "plan.unrecorded"]
    assert tfa("verify", str(work["ledger"]), "--public-key", str(work["pub"])).returncode == 0
    assert "blocked" in tfa("log").stdout

    # a recorded, unchanged plan goes through
    assert tfa("plan", "-out=good.tfplan").returncode == 0
    res = tfa("apply", "good.tfplan")
    assert res.returncode == 0, res.output
    assert (d / "terraform.tfstate").exists()


def test_plan_recorded_under_another_key_is_refused(work: dict[str, Any], tmp_path: Path,
                                                   run_tfaudit: Callable[..., CliResult]) -> None:
    from tfaudit.trail.signing import generate_keypair

    d = work["dir"]
    (d / ".tfaudit.hcl").write_text("require_recorded_plan = true\n")
    other, _ = generate_keypair(tmp_path / "other" / "key")
    assert run_tfaudit("plan", "-out=x.tfplan", cwd=d, env={"TFAUDIT_SIGNING_KEY": str(other)}).returncode == 0
    res = work["tfa"]("apply", "x.tfplan")
    assert res.returncode == 5 and "recorded under a different signing key" in res.stderr


def test_plan_recorded_under_a_listed_plan_key_is_accepted(work: dict[str, Any], tmp_path: Path,
                                                          run_tfaudit: Callable[..., CliResult]) -> None:
    """A pull request job signs its plan with a plan key; the apply job, holding the apply key, accepts it."""
    from tfaudit.trail.signing import generate_keypair

    d = work["dir"]
    plan_priv, plan_pub = generate_keypair(tmp_path / "plan" / "key")
    (d / "keys").mkdir()
    (d / "keys" / "plan.pub").write_bytes(plan_pub.read_bytes())
    (d / ".tfaudit.hcl").write_text('require_recorded_plan = true\nplan_keys = ["keys/plan.pub"]\n')
    assert run_tfaudit("plan", "-out=pr.tfplan", cwd=d, env={"TFAUDIT_SIGNING_KEY": str(plan_priv)}).returncode == 0
    res = work["tfa"]("apply", "pr.tfplan")
    assert res.returncode == 0, res.output
    recs = read_ledger(work["ledger"])
    plan_rec = next(r for r in recs if r["type"] == "plan.recorded")
    started = next(r for r in recs if r["type"] == "run.started")
    assert started["plan"]["recorded_by"]["id"] == plan_rec["id"]
    assert plan_rec["signature"]["key_id"] != started["signature"]["key_id"]
    both = work["tfa"]("verify", str(work["ledger"]), "--public-key", str(work["pub"]), "--public-key", str(plan_pub))
    assert both.returncode == 0, both.output


def test_plan_keys_must_name_existing_files(work: dict[str, Any]) -> None:
    (work["dir"] / ".tfaudit.hcl").write_text('plan_keys = ["missing.pub"]\n')
    res = work["tfa"]("plan")
    assert res.returncode == 64 and "plan_keys" in res.stderr and "missing.pub does not exist" in res.stderr


def test_require_recorded_plan_must_be_a_bool(work: dict[str, Any]) -> None:
    (work["dir"] / ".tfaudit.hcl").write_text('require_recorded_plan = "yes"\n')
    res = work["tfa"]("config", "validate")
    assert res.returncode == 64 and "require_recorded_plan" in res.stderr and "true or false" in res.stderr
