"""State commands through tfaudit, and state changed behind its back, with the real terraform."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from conftest import CliResult, read_ledger, require_terraform

pytestmark = [pytest.mark.slow, pytest.mark.terraform]

IMPORT_ID = "0b5b0e5e-5d1c-4a77-9c55-3f1f6c1d2a10"


@pytest.fixture
def work(tf_workdir: Callable[[str], Path], keypair: tuple[Path, Path], run_tfaudit: Callable[..., CliResult],
         base_env: dict[str, str]) -> dict[str, Any]:
    """An applied copy of fixtures/e2e (7 terraform_data instances), recorded in its ledger."""
    path = tf_workdir("e2e")
    with (path / "main.tf").open("a") as f:
        f.write('\nresource "terraform_data" "imported" {\n  input = "adopted"\n}\n')
    priv, pub = keypair
    env = {"TFAUDIT_SIGNING_KEY": str(priv)}

    def tfaudit(*args: str) -> CliResult:
        return run_tfaudit(*args, cwd=path, env=env)

    def terraform(*args: str) -> subprocess.CompletedProcess[str]:
        res = subprocess.run([require_terraform(), *args], cwd=path, env=base_env, capture_output=True, text=True,
                             timeout=120)
        assert res.returncode == 0, res.stdout + res.stderr
        return res

    res = tfaudit("apply", "-auto-approve", "-target=module.env", "-target=terraform_data.updated",
                  "-target=terraform_data.replaced", "-target=terraform_data.extra", "-target=terraform_data.secretive",
                  "-target=terraform_data.named_secret")
    assert res.returncode == 0, res.output
    return {"path": path, "tfaudit": tfaudit, "terraform": terraform, "ledger": path / ".tfaudit" / "ledger.jsonl",
            "pub": pub}


def _of(recs: list[dict[str, Any]], rtype: str) -> list[dict[str, Any]]:
    return [r for r in recs if r["type"] == rtype]


def _serial(work: dict[str, Any]) -> int:
    return int(json.loads(work["terraform"]("state", "pull").stdout)["serial"])


def test_terraform_apply_outside_tfaudit_is_reported_by_the_next_plan(work: dict[str, Any]) -> None:
    tfaudit, terraform = work["tfaudit"], work["terraform"]
    assert tfaudit("plan").returncode == 0
    assert _of(read_ledger(work["ledger"]), "state.out_of_band") == []  # nothing happened behind our back yet
    recorded_serial = _serial(work)

    terraform("apply", "-auto-approve", "-input=false", "-var", "gen=5", "-target=terraform_data.updated")
    plan = tfaudit("plan")
    assert plan.returncode == 0, plan.output
    assert "state changed outside tfaudit: serial moved from" in plan.stderr
    recs = read_ledger(work["ledger"])
    (oob,) = _of(recs, "state.out_of_band")
    detail = oob["detail"]
    assert detail["expected"]["record"]["type"] == "run.finished"
    assert detail["expected"]["state"]["serial"] == recorded_serial
    assert detail["observed"]["serial"] == _serial(work) > recorded_serial
    assert detail["reasons"] == [f"serial moved from {recorded_serial} to {_serial(work)} without a record"]
    assert [(f["rule"], f["severity"]) for f in oob["findings"]] == [("state.out-of-band", "high")]
    assert oob["run"]["id"] == _of(recs, "plan.recorded")[-1]["run"]["id"]  # noticed by that plan

    # recorded once: the next command compares against what the out-of-band record observed
    assert tfaudit("plan").returncode == 0
    assert len(_of(read_ledger(work["ledger"]), "state.out_of_band")) == 1
    verify = tfaudit("verify", str(work["ledger"]), "--public-key", str(work["pub"]))
    assert verify.returncode == 0, verify.output


def test_state_rm_and_a_forced_push_of_another_lineage_outside_tfaudit(work: dict[str, Any], tmp_path: Path) -> None:
    tfaudit, terraform = work["tfaudit"], work["terraform"]
    terraform("state", "rm", "terraform_data.updated")
    assert tfaudit("plan", "-refresh=false").returncode == 0
    (first,) = _of(read_ledger(work["ledger"]), "state.out_of_band")
    assert first["detail"]["reasons"][-1] == "resources 7 -> 6"

    state = json.loads(terraform("state", "pull").stdout)
    state["lineage"] = "00000000-0000-4000-8000-000000000000"
    state["serial"] += 1
    forged = tmp_path / "forged.tfstate"
    forged.write_text(json.dumps(state))
    terraform("state", "push", "-force", str(forged))
    res = tfaudit("apply", "-auto-approve", "-target=terraform_data.updated")  # any wrapped command notices
    assert res.returncode == 0, res.output
    second = _of(read_ledger(work["ledger"]), "state.out_of_band")[-1]
    assert second["run"]["command"] == "apply"
    assert any(r.startswith("lineage changed from ") and r.endswith(
        "to 00000000-0000-4000-8000-000000000000 (the state was replaced)") for r in second["detail"]["reasons"])


def test_state_commands_are_recorded_with_what_appeared_vanished_moved(work: dict[str, Any], tmp_path: Path) -> None:
    tfaudit, terraform = work["tfaudit"], work["terraform"]
    saved = tmp_path / "before-mv.tfstate"
    saved.write_text(terraform("state", "pull").stdout)

    steps = [
        (("state", "mv", "terraform_data.updated", "terraform_data.renamed"), "state mv",
         {"moved": [{"from": "terraform_data.updated", "to": "terraform_data.renamed"}], "appeared": [], "vanished": []}),
        (("taint", "terraform_data.replaced"), "taint", {"tainted": ["terraform_data.replaced"]}),
        (("untaint", "terraform_data.replaced"), "untaint", {"untainted": ["terraform_data.replaced"]}),
        (("state", "rm", "terraform_data.extra[0]"), "state rm", {"vanished": ["terraform_data.extra[0]"]}),
        (("import", "terraform_data.imported", IMPORT_ID), "import", {"appeared": ["terraform_data.imported"]}),
    ]
    for args, command, expect in steps:
        serial = _serial(work)
        res = tfaudit(*args)
        assert res.returncode == 0, res.output
        rec = read_ledger(work["ledger"])[-1]
        assert rec["type"] == "state.changed" and rec["run"]["command"] == command
        d = rec["detail"]
        assert (d["exit_code"], d["status"], d["changed"]) == (0, "succeeded", True)
        assert d["state"]["before"]["serial"] == serial and d["state"]["after"]["serial"] == _serial(work) > serial
        for key, value in expect.items():
            assert d[key] == value, (command, key, d)

    # a forced push through tfaudit: recorded too, and the state really went back
    res = tfaudit("state", "push", "-force", str(saved))
    assert res.returncode == 0, res.output
    d = read_ledger(work["ledger"])[-1]["detail"]
    assert d["command"] == "state push" and "terraform_data.updated" in d["appeared"]
    assert "terraform_data.updated" in terraform("state", "list").stdout

    # a failing command is recorded as failed, with terraform's own exit code passed through
    res = tfaudit("state", "rm", "terraform_data.does_not_exist")
    assert res.returncode == 1
    d = read_ledger(work["ledger"])[-1]["detail"]
    assert (d["status"], d["exit_code"], d["changed"]) == ("failed", 1, False)

    # read-only subcommands pass through unrecorded; nothing above counts as out of band
    count = len(read_ledger(work["ledger"]))
    listed = tfaudit("state", "list")
    assert listed.returncode == 0 and "terraform_data.renamed" not in listed.stdout
    assert len(read_ledger(work["ledger"])) == count
    assert tfaudit("plan", "-refresh=false").returncode in (0, 2)
    assert _of(read_ledger(work["ledger"]), "state.out_of_band") == []
    verify = tfaudit("verify", str(work["ledger"]), "--public-key", str(work["pub"]))
    assert verify.returncode == 0, verify.output


def test_a_state_terraform_could_not_read_is_never_taken_for_a_change(work: dict[str, Any]) -> None:
    tfaudit, state_file = work["tfaudit"], work["path"] / "terraform.tfstate"
    good = state_file.read_bytes()
    state_file.write_text("{ this is not a state")
    res = tfaudit("apply", "-auto-approve")
    assert res.returncode == 1, res.output  # terraform itself refuses the broken state
    finished = read_ledger(work["ledger"])[-1]
    assert finished["type"] == "run.finished" and finished["outcome"]["state"]["after"] is None
    state_file.write_bytes(good)
    assert tfaudit("plan", "-refresh=false").returncode == 0
    assert _of(read_ledger(work["ledger"]), "state.out_of_band") == []

