"""End to end with the real terraform: what a resource's record says happened is what happened.

fixtures/outcomes: a replace that stops half-way (gen, fail), a failing check block (check_fail), a
failing postcondition (post_fail) and precondition (pre_fail), a provisioner printing a private key
(pem). fixtures/outcomes-many: 200 objects replaced together, to interrupt.
"""

from __future__ import annotations

import json
import re
import shutil
import signal
import subprocess
import sys
import time
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from conftest import CliResult, read_ledger, require_terraform

pytestmark = [pytest.mark.slow, pytest.mark.terraform]


def _run_records(recs: list[dict[str, Any]], rtype: str = "resource.changed") -> dict[str, dict[str, Any]]:
    """The newest run's records of one type, by address (resource.changed) or by type."""
    run = [r for r in recs if r["type"] == "run.started"][-1]["run"]["id"]
    mine = [r for r in recs if r["run"]["id"] == run and r["type"] == rtype]
    if rtype == "resource.changed":
        return {r["resource"]["address"]: r["resource"] for r in mine}
    return {rtype: mine[-1]} if mine else {}


def _state(work: Path, env: dict[str, str]) -> dict[str, dict[str, Any]]:
    """The state after, as terraform itself reports it: address -> {"id", "tainted"} of current objects."""
    out = subprocess.run([require_terraform(), "state", "pull"], cwd=work, env=env, capture_output=True,
                         text=True, check=True).stdout
    found: dict[str, dict[str, Any]] = {}
    for res in json.loads(out)["resources"] if out.strip() else []:
        for inst in res["instances"]:
            if inst.get("deposed"):
                continue
            key = inst.get("index_key")
            addr = f"{res['type']}.{res['name']}" + (f"[{json.dumps(key)}]" if key is not None else "")
            found[addr] = {"id": inst["attributes"].get("id"), "tainted": inst.get("status") == "tainted"}
    return found


@pytest.fixture
def oc(tf_workdir: Callable[[str], Path], keypair: tuple[Path, Path], base_env: dict[str, str],
       run_tfaudit: Callable[..., CliResult]) -> dict[str, Any]:
    work = tf_workdir("outcomes")
    env = {"TFAUDIT_SIGNING_KEY": str(keypair[0])}

    def tfaudit(*args: str, **kw: Any) -> CliResult:
        return run_tfaudit(*args, cwd=work, env=env, **kw)

    return {"work": work, "run": tfaudit, "pub": keypair[1], "env": base_env,
            "ledger": work / ".tfaudit" / "ledger.jsonl"}


def test_created_resource_record_carries_its_real_id(oc: dict[str, Any]) -> None:
    r = oc["run"]("apply", "-auto-approve")
    assert r.returncode == 0, r.output
    recs = _run_records(read_ledger(oc["ledger"]))
    state = _state(oc["work"], oc["env"])
    for address in ("terraform_data.dep", "terraform_data.b", "terraform_data.guarded"):
        res = recs[address]
        assert res["status"] == "succeeded" and res["after_source"] == "state"
        assert res["after"]["id"] == state[address]["id"]  # not "(known after apply)"
    # b's input is dep's id, known only after apply: the record has the value it got
    assert recs["terraform_data.b"]["after"]["input"] == state["terraform_data.dep"]["id"]
    shown = oc["run"]("history", "terraform_data.b", "--values")
    assert f'id: null -> "{state["terraform_data.b"]["id"]}"' in shown.stdout, shown.output


def test_half_done_replace_is_not_recorded_as_succeeded(oc: dict[str, Any]) -> None:
    assert oc["run"]("apply", "-auto-approve").returncode == 0
    r = oc["run"]("apply", "-auto-approve", "-var", "gen=2", "-var", "fail=true")
    assert r.returncode == 1, r.output
    state = _state(oc["work"], oc["env"])
    assert "terraform_data.b" not in state  # terraform destroyed b and never re-created it
    recs = _run_records(read_ledger(oc["ledger"]))
    b, dep = recs["terraform_data.b"], recs["terraform_data.dep"]
    assert b["status"] == "incomplete"
    assert [(p["action"], p["status"]) for p in b["phases"]] == [("delete", "succeeded"), ("create", "not_attempted")]
    assert b["after"] is None and b["after_source"] == "state"
    assert dep["status"] == "failed"
    assert [(p["action"], p["status"]) for p in dep["phases"]] == [("delete", "succeeded"), ("create", "failed")]
    assert dep["error"]["summary"] == "local-exec provisioner error"
    fin = _run_records(read_ledger(oc["ledger"]), "run.finished")["run.finished"]["outcome"]
    assert fin["status"] == "failed" and fin["counts"]["incomplete"] == 1 and fin["counts"]["failed"] == 1

    h = oc["run"]("history", "terraform_data.b")
    assert "replace terraform_data.b  INCOMPLETE" in h.stdout, h.output
    assert "phases: delete succeeded, create not_attempted" in h.stdout
    hj = json.loads(oc["run"]("history", "terraform_data.b", "--format", "json").stdout)
    assert hj[0]["status"] == "incomplete" and hj[1]["status"] == "succeeded"
    v = oc["run"]("verify", str(oc["ledger"]), "--public-key", str(oc["pub"]))
    assert v.returncode == 0, v.output


def test_interrupted_200_replace_never_claims_an_object_the_state_lacks(
        tf_workdir: Callable[[str], Path], keypair: tuple[Path, Path], base_env: dict[str, str]) -> None:
    work = tf_workdir("outcomes-many")
    env = {**base_env, "TFAUDIT_SIGNING_KEY": str(keypair[0])}
    cmd = [sys.executable, "-m", "tfaudit", "apply", "-auto-approve"]
    first = subprocess.run(cmd, cwd=work, env=env, capture_output=True, text=True, timeout=600)
    assert first.returncode == 0, first.stdout + first.stderr
    before = _state(work, base_env)
    ledger = work / ".tfaudit" / "ledger.jsonl"
    screen = work / "screen.txt"  # a file, not a pipe: the plan of 200 replacements fills a pipe
    with screen.open("wb") as out:
        proc = subprocess.Popen([*cmd, "-var", "gen=2"], cwd=work, env=env, stdout=out, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and b"Creating..." not in screen.read_bytes():
            time.sleep(0.05)  # the deletes are done in a moment; interrupt among the (slow) creates
        time.sleep(0.5)
        proc.send_signal(signal.SIGINT)  # Ctrl-C to tfaudit alone: it forwards it to terraform
        proc.wait(timeout=300)
    assert proc.returncode != 0, screen.read_text()[-2000:]  # 1, as terraform exits when interrupted

    recs = read_ledger(ledger)
    assert _run_records(recs, "run.finished")["run.finished"]["outcome"]["status"] == "interrupted"
    changed = _run_records(recs)
    assert len(changed) == 200
    after = _state(work, base_env)
    statuses = {res["status"] for res in changed.values()}
    assert statuses - {"succeeded"}, f"the interrupt came too late to test anything: {statuses}"
    assert len(after) < 200  # objects were destroyed and never re-created
    for address, res in changed.items():
        if res["status"] == "succeeded":
            assert address in after and not after[address]["tainted"], (address, res["evidence"])
            assert after[address]["id"] != before[address]["id"]  # the new object, not the old one
            assert res["after"]["id"] == after[address]["id"]
        elif address not in after:
            assert res["status"] in ("incomplete", "interrupted", "failed", "unknown"), (address, res)


def test_failing_check_block_is_recorded_and_analyzed(oc: dict[str, Any], base_env: dict[str, str]) -> None:
    r = oc["run"]("apply", "-auto-approve", "-var", "check_fail=true")
    assert r.returncode == 0, r.output  # terraform only warns about a check block
    recs = read_ledger(oc["ledger"])
    started = _run_records(recs, "run.started")["run.started"]
    checks = {c["address"]: c for c in started["plan"]["checks"]}
    assert checks["check.gen_is_small"]["status"] == "fail"
    assert checks["check.gen_is_small"]["problems"] == ["check_fail is set, so this check fails"]
    assert any(f["rule"] == "check.failed" and f["address"] == "check.gen_is_small" for f in started["findings"])
    fin = _run_records(recs, "run.finished")["run.finished"]["outcome"]
    assert [c["address"] for c in fin["failed_checks"]] == ["check.gen_is_small"]

    tf = require_terraform()
    subprocess.run([tf, "plan", "-var", "check_fail=true", "-out=c.tfplan"], cwd=oc["work"], env=base_env,
                   capture_output=True, check=True)
    plan_json = oc["work"] / "c.json"
    plan_json.write_bytes(subprocess.run([tf, "show", "-json", "c.tfplan"], cwd=oc["work"], env=base_env,
                                         capture_output=True, check=True).stdout)
    a = oc["run"]("analyze", str(plan_json))
    assert "check.failed" in a.stdout and "check.gen_is_small" in a.stdout, a.output


def test_failing_postcondition_fails_its_resource(oc: dict[str, Any]) -> None:
    assert oc["run"]("apply", "-auto-approve").returncode == 0
    r = oc["run"]("apply", "-auto-approve", "-var", "post_fail=true")
    assert r.returncode == 1, r.output
    guarded = _run_records(read_ledger(oc["ledger"]))["terraform_data.guarded"]
    assert guarded["status"] == "failed"
    assert guarded["error"] == {"summary": "Resource postcondition failed", "detail": "guarded output must be fine"}
    assert [(p["action"], p["status"]) for p in guarded["phases"]] == [("update", "succeeded")]
    assert guarded["after"]["output"] == "bad"  # the update happened: the state holds the new value
    h = oc["run"]("history", "terraform_data.guarded")
    assert "update terraform_data.guarded  FAILED" in h.stdout, h.output


def test_errored_plan_says_so_in_every_analyze_format(oc: dict[str, Any], base_env: dict[str, str]) -> None:
    tf = require_terraform()
    res = subprocess.run([tf, "plan", "-var", "pre_fail=true", "-out=e.tfplan"], cwd=oc["work"], env=base_env,
                         capture_output=True, text=True)
    assert res.returncode == 1 and "pre_fail is set" in res.stdout + res.stderr
    shown = subprocess.run([tf, "show", "-json", "e.tfplan"], cwd=oc["work"], env=base_env, capture_output=True,
                           check=True).stdout
    assert json.loads(shown)["errored"] is True
    path = oc["work"] / "errored.json"
    path.write_bytes(shown)
    outs = {fmt: oc["run"]("analyze", str(path), "--format", fmt) for fmt in ("table", "markdown", "json", "sarif")}
    assert "Findings: none" not in outs["table"].stdout and "plan.errored" in outs["table"].stdout
    assert "**Findings:** none" not in outs["markdown"].stdout and "plan.errored" in outs["markdown"].stdout
    doc = json.loads(outs["json"].stdout)
    assert doc["errored"] is True and any(f["rule"] == "plan.errored" for f in doc["findings"])
    sarif = json.loads(outs["sarif"].stdout)
    assert any(r["ruleId"] == "plan.errored" for r in sarif["runs"][0]["results"])
    # the failing precondition is a finding too
    assert any(f["rule"] == "check.failed" and f["address"] == "terraform_data.guarded" for f in doc["findings"])


def _pem(work: Path) -> list[str]:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL,
                            serialization.NoEncryption())
    (work / "leaked-key.pem").write_bytes(pem)
    return pem.decode().splitlines()


@pytest.mark.parametrize("json_mode", [False, True], ids=["progress", "json"])
def test_private_key_from_a_failing_provisioner_is_never_shown_or_recorded(oc: dict[str, Any], json_mode: bool) -> None:
    lines = _pem(oc["work"])
    r = oc["run"]("apply", "-auto-approve", "-var", "pem=true", *(["-json"] if json_mode else []))
    assert r.returncode == 1, r.output
    assert "local-exec provisioner error" in r.output
    ledger = oc["ledger"].read_text()
    for body in lines[1:-1]:  # every line of the key's body, on screen and in the ledger
        assert body not in r.output and body not in ledger
    assert "BEGIN RSA PRIVATE KEY" not in r.output and "BEGIN RSA PRIVATE KEY" not in ledger
    assert "(local-exec): (redacted)" in re.sub(r"\x1b\[[0-9;]*m", "", r.output)
    leaky = _run_records(read_ledger(oc["ledger"]))["terraform_data.leaky[0]"]
    assert leaky["status"] == "failed"


def _plan_file(oc: dict[str, Any], base_env: dict[str, str]) -> Path:
    tf = require_terraform()
    subprocess.run([tf, "plan", "-out=good.tfplan"], cwd=oc["work"], env=base_env, capture_output=True, check=True)
    return oc["work"] / "good.tfplan"


def test_saved_plan_from_another_terraform_gives_terraforms_own_words(oc: dict[str, Any],
                                                                      base_env: dict[str, str]) -> None:
    good = _plan_file(oc, base_env)
    version = json.loads(subprocess.run([require_terraform(), "version", "-json"], capture_output=True,
                                        check=True).stdout)["terraform_version"]
    older = version[:-1] + ("0" if version[-1] != "0" else "1")  # same length, another version
    old = oc["work"] / "old.tfplan"
    with zipfile.ZipFile(good) as src, zipfile.ZipFile(old, "w") as dst:
        for info in src.infolist():
            data = src.read(info)
            dst.writestr(info, data.replace(version.encode(), older.encode()) if info.filename == "tfplan" else data)
    r = oc["run"]("apply", "old.tfplan")
    assert r.returncode == 1
    assert f"plan file was created by Terraform {older}, but this is {version}" in r.stderr, r.stderr
    assert "\x1b[" not in r.stderr and "╷" not in r.stderr and "Traceback" not in r.stderr


def test_corrupt_saved_plan_gives_terraforms_own_words(oc: dict[str, Any], base_env: dict[str, str]) -> None:
    good = _plan_file(oc, base_env)
    shutil.copy(good, oc["work"] / "bad.tfplan")
    (oc["work"] / "bad.tfplan").write_bytes(good.read_bytes()[:100])
    r = oc["run"]("apply", "bad.tfplan")
    assert r.returncode == 1
    assert "Failed to read the given file as a state or plan file" in r.stderr, r.stderr
    assert "not a valid zip file" in r.stderr
    assert "\x1b[" not in r.stderr and "╷" not in r.stderr


def test_moves_forgets_imports_and_target_agree_with_the_state(tf_workdir: Callable[[str], Path],
                                                                keypair: tuple[Path, Path], base_env: dict[str, str],
                                                                run_tfaudit: Callable[..., CliResult]) -> None:
    work = tf_workdir("outcomes-moves")
    env = {"TFAUDIT_SIGNING_KEY": str(keypair[0])}
    ledger = work / ".tfaudit" / "ledger.jsonl"
    assert run_tfaudit("apply", "-auto-approve", cwd=work, env=env).returncode == 0
    shutil.copy(work / "stage2" / "main.tf", work / "main.tf")
    r = run_tfaudit("apply", "-auto-approve", cwd=work, env=env)
    assert r.returncode == 0, r.output
    recs = _run_records(read_ledger(ledger))
    state = _state(work, base_env)
    assert set(state) == {"terraform_data.new_name", "terraform_data.imported", "terraform_data.targeted",
                          "terraform_data.untargeted"}
    assert (recs["terraform_data.new_name"]["action"], recs["terraform_data.new_name"]["status"]) == ("move", "succeeded")
    assert [p["action"] for p in recs["terraform_data.new_name"]["phases"]] == ["move"]
    assert (recs["terraform_data.to_forget"]["action"], recs["terraform_data.to_forget"]["status"]) == ("forget", "succeeded")
    imported = recs["terraform_data.imported"]
    assert (imported["action"], imported["status"]) == ("import", "succeeded")
    assert imported["after"]["id"] == "import-me-123" == state["terraform_data.imported"]["id"]

    r = run_tfaudit("apply", "-auto-approve", "-var", "gen=2", "-target=terraform_data.targeted", cwd=work, env=env)
    assert r.returncode == 0, r.output
    recs = _run_records(read_ledger(ledger))
    assert set(recs) == {"terraform_data.targeted"}
    assert recs["terraform_data.targeted"]["status"] == "succeeded"
    assert recs["terraform_data.targeted"]["after"]["input"] == 2
