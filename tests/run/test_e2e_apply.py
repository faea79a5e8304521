"""End to end with the real terraform: tfaudit apply/plan/destroy on terraform_data configs."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from conftest import CliResult, read_ledger

pytestmark = [pytest.mark.slow, pytest.mark.terraform]

SECRET = "planted-SECRET-value-7f3a9c"
NAMED_SECRET = "token-by-name-4d2e8b"


def _by_type(recs: list[dict[str, Any]], rtype: str) -> list[dict[str, Any]]:
    return [r for r in recs if r["type"] == rtype]


def _resources(recs: list[dict[str, Any]], run_id: str) -> dict[str, dict[str, Any]]:
    return {r["resource"]["address"]: r["resource"] for r in recs
            if r["type"] == "resource.changed" and r["run"]["id"] == run_id}


@pytest.fixture
def e2e(tf_workdir: Callable[[str], Path], keypair: tuple[Path, Path],
        run_tfaudit: Callable[..., CliResult]) -> dict[str, Any]:
    work = tf_workdir("e2e")
    priv, pub = keypair

    def apply(*args: str, env: dict[str, str] | None = None, **kw: Any) -> CliResult:
        return run_tfaudit("apply", *args, cwd=work, env={"TFAUDIT_SIGNING_KEY": str(priv), **(env or {})}, **kw)

    return {"work": work, "pub": pub, "priv": priv, "apply": apply, "ledger": work / ".tfaudit" / "ledger.jsonl"}


def test_create_update_replace_delete_and_partial_failure(e2e: dict[str, Any], run_tfaudit: Callable[..., CliResult]) -> None:
    apply, ledger, work = e2e["apply"], e2e["ledger"], e2e["work"]

    # 1. create everything
    r1 = apply("-auto-approve")
    assert r1.returncode == 0, r1.output
    assert "Apply complete! Resources: 7 added, 0 changed, 0 destroyed." in r1.stdout
    assert "terraform_data.updated: Creation complete after" in r1.stdout
    recs = read_ledger(ledger)
    assert [r["type"] for r in recs][0] == "run.started"
    run1 = recs[0]["run"]["id"]
    res1 = _resources(recs, run1)
    assert set(res1) == {
        "terraform_data.updated", "terraform_data.replaced", "terraform_data.extra[0]",
        "terraform_data.secretive", "terraform_data.named_secret",
        'module.env["dev"].terraform_data.this', 'module.env["prod"].terraform_data.this',
    }
    assert all(r["actions"] == ["create"] and r["status"] == "succeeded" for r in res1.values())
    dev = res1['module.env["dev"].terraform_data.this']
    assert dev["module"] == 'module.env["dev"]' and dev["type"] == "terraform_data" and dev["name"] == "this"
    assert res1["terraform_data.extra[0]"]["index"] == 0
    assert res1["terraform_data.updated"]["after"]["input"] == {"gen": 1, "label": "updated-in-place"}
    fin1 = _by_type(recs, "run.finished")[-1]
    assert fin1["outcome"]["status"] == "succeeded" and fin1["outcome"]["exit_code"] == 0
    assert fin1["outcome"]["counts"]["succeeded"] == 7
    assert fin1["outcome"]["state"]["before"] is None
    assert fin1["outcome"]["state"]["after"]["serial"] >= 1

    # 2. update, replace, delete, module for_each update
    r2 = apply("-auto-approve", "-var", "gen=2", "-var=rev=2", "-var", "extra=false")
    assert r2.returncode == 0, r2.output
    recs = read_ledger(ledger)
    run2 = _by_type(recs, "run.started")[-1]["run"]["id"]
    res2 = _resources(recs, run2)
    assert res2["terraform_data.updated"]["actions"] == ["update"]
    # output is computed from input, so it is unknown until apply: a changed path too
    assert res2["terraform_data.updated"]["changed_paths"] == ["input.gen", "output"]
    # after apply the record holds the value the state got, not the plan's "(known after apply)"
    assert res2["terraform_data.updated"]["after"]["output"] == {"gen": 2, "label": "updated-in-place"}
    assert res2["terraform_data.updated"]["before"]["input"]["gen"] == 1
    assert res2["terraform_data.updated"]["after"]["input"]["gen"] == 2
    assert res2["terraform_data.replaced"]["actions"] == ["delete", "create"]
    assert res2["terraform_data.replaced"]["action"] == "replace"
    assert res2["terraform_data.replaced"]["action_reason"] == "replace_because_cannot_update"
    assert "triggers_replace[0]" in res2["terraform_data.replaced"]["changed_paths"]
    assert res2["terraform_data.extra[0]"]["actions"] == ["delete"]
    assert res2["terraform_data.extra[0]"]["action_reason"] == "delete_because_count_index"
    assert res2['module.env["prod"].terraform_data.this']["actions"] == ["update"]
    assert all(r["status"] == "succeeded" for r in res2.values())
    assert "terraform_data.secretive" not in res2  # unchanged resources get no record
    fin2 = _by_type(recs, "run.finished")[-1]
    assert fin2["outcome"]["state"]["before"]["lineage"] == fin2["outcome"]["state"]["after"]["lineage"]
    assert fin2["outcome"]["state"]["after"]["serial"] > fin2["outcome"]["state"]["before"]["serial"]
    assert fin2["run"]["args"] == ["-auto-approve", "-var", "gen=(redacted)", "-var=rev=(redacted)", "-var", "extra=(redacted)"]

    # 3. a partial failure: a provisioner fails, its dependant is never attempted, the rest succeed
    r3 = apply("-auto-approve", "-var", "gen=3", "-var=rev=2", "-var", "extra=false", "-var", "fail=true")
    assert r3.returncode == 1, r3.output
    assert "local-exec provisioner error" in r3.stderr
    recs = read_ledger(ledger)
    run3 = _by_type(recs, "run.started")[-1]["run"]["id"]
    res3 = _resources(recs, run3)
    flaky = res3["terraform_data.flaky[0]"]
    assert flaky["status"] == "failed"
    assert flaky["error"]["summary"] == "local-exec provisioner error"
    assert "exit status 7" in flaky["error"]["detail"]
    assert res3["terraform_data.after_flaky[0]"]["status"] == "not_attempted"
    assert res3["terraform_data.updated"]["status"] == "succeeded"
    fin3 = _by_type(recs, "run.finished")[-1]
    assert fin3["outcome"]["status"] == "partial"
    assert fin3["outcome"]["exit_code"] == 1
    assert fin3["outcome"]["counts"]["failed"] == 1
    assert fin3["outcome"]["counts"]["not_attempted"] == 1

    # every record verifies; seq runs 1..N across runs
    assert [r["chain"]["seq"] for r in recs] == list(range(1, len(recs) + 1))
    v = run_tfaudit("verify", str(ledger), "--public-key", str(e2e["pub"]))
    assert v.returncode == 0, v.output
    assert f"OK: {len(recs)} records in 3 runs verified" in v.stdout

    # no planted secret anywhere tfaudit wrote or printed
    written = ledger.read_bytes().decode()
    for out in (written, r1.output, r2.output, r3.output):
        assert SECRET not in out
    assert NAMED_SECRET not in written
    assert '"password":"(sensitive)"' in written
    assert '"api_token":"(redacted)"' in written


@pytest.fixture(scope="module")
def partial_failure_ledger(_initialized: Callable[[str], Path], base_env: dict[str, str],
                           tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A real ledger: one clean apply, then a partial failure. Built once for the tamper tests."""
    import shutil

    from tfaudit.trail.signing import generate_keypair

    work = tmp_path_factory.mktemp("tamper") / "e2e"
    shutil.copytree(_initialized("e2e"), work, symlinks=True)
    priv, pub = generate_keypair(work.parent / "key")
    env = {**base_env, "TFAUDIT_SIGNING_KEY": str(priv)}
    for args in (["-auto-approve"], ["-auto-approve", "-var", "gen=2", "-var", "fail=true"]):
        subprocess.run([sys.executable, "-m", "tfaudit", "apply", *args], cwd=work, env=env, capture_output=True,
                       check=False, timeout=300)
    ledger = work / ".tfaudit" / "ledger.jsonl"
    assert '"status":"partial"' in ledger.read_text()
    return ledger, pub


def _tamper(lines: list[str], case: str) -> list[str]:
    failed = next(i for i, ln in enumerate(lines) if '"status":"failed"' in ln)
    if case == "edited_failed_to_succeeded":
        lines[failed] = lines[failed].replace('"status":"failed"', '"status":"succeeded"')
    elif case == "deleted_record":
        del lines[failed]
    elif case == "swapped_records":
        lines[2], lines[3] = lines[3], lines[2]
    elif case == "duplicated_record":
        lines.insert(failed + 1, lines[failed])
    elif case == "removed_run_finished":
        assert '"type":"run.finished"' in lines[-1]
        del lines[-1]
    elif case == "changed_signature_byte":
        rec = json.loads(lines[failed])
        sig = rec["signature"]["value"]
        flipped = ("B" if sig[10] == "A" else "A")
        lines[failed] = lines[failed].replace(sig, sig[:10] + flipped + sig[11:])
    elif case == "torn_final_line":
        lines[-1] = lines[-1][: len(lines[-1]) // 2]
    return lines


TAMPER_CASES = ["edited_failed_to_succeeded", "deleted_record", "swapped_records", "duplicated_record",
                "removed_run_finished", "changed_signature_byte", "torn_final_line", "different_public_key"]


def test_real_ledger_verifies_untouched(partial_failure_ledger: tuple[Path, Path],
                                        run_tfaudit: Callable[..., CliResult]) -> None:
    ledger, pub = partial_failure_ledger
    v = run_tfaudit("verify", str(ledger), "--public-key", str(pub))
    assert v.returncode == 0, v.output
    assert "in 2 runs verified" in v.stdout


@pytest.mark.parametrize("case", TAMPER_CASES)
def test_each_tampered_variant_is_rejected(partial_failure_ledger: tuple[Path, Path], case: str, tmp_path: Path,
                                           run_tfaudit: Callable[..., CliResult]) -> None:
    from tfaudit.trail.signing import generate_keypair

    ledger, pub = partial_failure_ledger
    copy = tmp_path / "ledger.jsonl"
    if case == "different_public_key":
        copy.write_bytes(ledger.read_bytes())
        pub = generate_keypair(tmp_path / "other")[1]
    else:
        copy.write_text("".join(_tamper(ledger.read_text().splitlines(keepends=True), case)))
    v = run_tfaudit("verify", str(copy), "--public-key", str(pub))
    assert v.returncode == 1, v.output
    assert "FAILED:" in v.stdout
    assert f"{copy}:" in v.stdout  # each problem names its line
    j = json.loads(run_tfaudit("verify", str(copy), "--public-key", str(pub), "--json").stdout)
    assert j["ok"] is False and j["problems"]


def test_interactive_approval_like_terraform(e2e: dict[str, Any]) -> None:
    apply, ledger, work = e2e["apply"], e2e["ledger"], e2e["work"]
    no = apply(input="no\n", env={"TF_IN_AUTOMATION": ""})
    assert no.returncode == 1
    assert "Only 'yes' will be accepted to approve." in no.stdout
    assert "Saved the plan to" not in no.stdout and "tfaudit.tfplan" not in no.stdout
    assert "Apply cancelled." in no.stdout
    assert not (work / "terraform.tfstate").exists()
    # declining is recorded: who declined which plan, and when; nothing was applied
    declined = read_ledger(ledger)
    assert [r["type"] for r in declined] == ["run.started", "run.finished"]
    started, finished = declined
    assert finished["outcome"]["status"] == "declined" and finished["outcome"]["exit_code"] == 1
    assert finished["outcome"]["reason"] == "approval declined at the prompt"
    assert finished["actor"]["user"] == "alice" and finished["time"] >= started["time"]
    assert len(started["plan"]["sha256"]) == 64 and started["plan"]["summary"]["create"] >= 1
    assert finished["outcome"]["counts"]["succeeded"] == 0 and finished["outcome"]["state"]["after"] is None
    yes = apply(input="yes\n")
    assert yes.returncode == 0, yes.output
    assert "Apply complete!" in yes.stdout


def test_saved_plan_file_is_applied_and_hashed(e2e: dict[str, Any], base_env: dict[str, str]) -> None:
    work, ledger = e2e["work"], e2e["ledger"]
    tf = subprocess.run(["terraform", "plan", "-out=saved.tfplan", "-var", "gen=5"], cwd=work, env=base_env,
                        capture_output=True, text=True)
    assert tf.returncode == 0, tf.stderr
    digest = hashlib.sha256((work / "saved.tfplan").read_bytes()).hexdigest()
    r = e2e["apply"]("saved.tfplan")
    assert r.returncode == 0, r.output
    recs = read_ledger(ledger)
    assert all(rec["run"]["plan_sha256"] == digest for rec in recs)
    assert recs[0]["run"]["plan_file"] == "saved.tfplan"
    assert _resources(recs, recs[0]["run"]["id"])["terraform_data.updated"]["after"]["input"]["gen"] == 5
    # -var with a saved plan goes to terraform apply (ephemeral variables need it); a value that
    # contradicts the plan gets terraform's own error, as it would without tfaudit
    assert subprocess.run(["terraform", "plan", "-out=again.tfplan", "-var", "gen=6"], cwd=work, env=base_env,
                          capture_output=True).returncode == 0
    again = e2e["apply"]("-var", "gen=7", "-no-color", "again.tfplan")
    assert again.returncode == 1
    assert "Can't change variable when applying a saved plan" in again.output


def test_chdir_and_wrong_argument_reach_terraform(e2e: dict[str, Any], run_tfaudit: Callable[..., CliResult],
                                                 tmp_path: Path) -> None:
    env = {"TFAUDIT_SIGNING_KEY": str(e2e["priv"])}
    r = run_tfaudit(f"-chdir={e2e['work']}", "apply", "-auto-approve", cwd=tmp_path, env=env)
    assert r.returncode == 0, r.output
    assert e2e["ledger"].exists()
    r2 = run_tfaudit("apply", f"-chdir={e2e['work']}", "-auto-approve", "-no-such-flag", cwd=tmp_path, env=env)
    assert r2.returncode == 1
    assert "flag provided but not defined: -no-such-flag" in r2.output


def test_plan_records_plan_and_keeps_detailed_exitcode(e2e: dict[str, Any], run_tfaudit: Callable[..., CliResult]) -> None:
    env = {"TFAUDIT_SIGNING_KEY": str(e2e["priv"])}
    # TF_IN_AUTOMATION off: terraform then prints its "how to apply this plan" hints
    r = run_tfaudit("plan", "-detailed-exitcode", "-no-color", cwd=e2e["work"], env={**env, "TF_IN_AUTOMATION": ""})
    assert r.returncode == 2, r.output
    assert "Plan: 7 to add, 0 to change, 0 to destroy." in r.stdout
    # tfaudit plans to a temporary file; terraform's hint to apply that file would mislead
    assert "Saved the plan to" not in r.stdout and "tfaudit.tfplan" not in r.stdout
    assert "Note: You didn't use the -out option to save this plan" in r.stdout
    (rec,) = read_ledger(e2e["ledger"])
    assert rec["type"] == "plan.recorded"
    assert rec["plan"]["summary"] == {"create": 7}
    assert len(rec["plan"]["changes"]) == 7


def test_destroy_records_deletes(e2e: dict[str, Any], run_tfaudit: Callable[..., CliResult]) -> None:
    assert e2e["apply"]("-auto-approve").returncode == 0
    r = run_tfaudit("destroy", "-auto-approve", cwd=e2e["work"], env={"TFAUDIT_SIGNING_KEY": str(e2e["priv"])})
    assert r.returncode == 0, r.output
    assert "Destroy complete! Resources: 7 destroyed." in r.stdout
    recs = read_ledger(e2e["ledger"])
    last_run = recs[-1]["run"]["id"]
    assert recs[-1]["run"]["command"] == "destroy"
    res = _resources(recs, last_run)
    assert len(res) == 7 and all(x["actions"] == ["delete"] and x["status"] == "succeeded" for x in res.values())


def test_unwritable_ledger_stops_before_apply(e2e: dict[str, Any]) -> None:
    work = e2e["work"]
    (work / "blocked").mkdir()
    r = e2e["apply"]("-auto-approve", "--ledger", str(work / "blocked"))
    assert r.returncode == 4
    assert "cannot write the ledger" in r.stderr and "Traceback" not in r.stderr
    assert not (work / "terraform.tfstate").exists()


def test_missing_terraform_and_bad_config_are_one_line_errors(e2e: dict[str, Any], run_tfaudit: Callable[..., CliResult]) -> None:
    work = e2e["work"]
    r = run_tfaudit("apply", "-auto-approve", cwd=work, env={"PATH": "/nonexistent", "TFAUDIT_SIGNING_KEY": str(e2e["priv"])})
    assert r.returncode == 64
    assert r.stderr.strip().count("\n") == 0 and "terraform nor tofu was found" in r.stderr
    (work / ".tfaudit.hcl").write_text('ledger {\n  paht = "x"\n}\n')
    r2 = e2e["apply"]("-auto-approve")
    assert r2.returncode == 64
    assert "block ledger: unknown key 'paht'" in r2.stderr and "Traceback" not in r2.stderr
    assert not (work / "terraform.tfstate").exists()


def test_first_use_creates_a_per_user_key_and_says_so(e2e: dict[str, Any], run_tfaudit: Callable[..., CliResult],
                                                      tmp_path: Path) -> None:
    cfg_home = tmp_path / "xdg"
    r = run_tfaudit("apply", "-auto-approve", cwd=e2e["work"], env={"XDG_CONFIG_HOME": str(cfg_home)})
    assert r.returncode == 0, r.output
    key = cfg_home / "tfaudit" / "signing-key"
    assert key.exists() and (key.stat().st_mode & 0o777) == 0o600
    assert "created a signing key" in r.stderr
    r2 = run_tfaudit("apply", "-auto-approve", "-var", "gen=9", cwd=e2e["work"], env={"XDG_CONFIG_HOME": str(cfg_home)})
    assert r2.returncode == 0 and "created a signing key" not in r2.stderr
    v = run_tfaudit("verify", str(e2e["ledger"]), "--public-key", f"{key}.pub")
    assert v.returncode == 0, v.output


def test_sigterm_is_forwarded_and_recorded_as_interrupted(tf_workdir: Callable[[str], Path], keypair: tuple[Path, Path],
                                                           base_env: dict[str, str]) -> None:
    work = tf_workdir("slow")
    env = {**base_env, "TFAUDIT_SIGNING_KEY": str(keypair[0])}
    proc = subprocess.Popen([sys.executable, "-m", "tfaudit", "apply", "-auto-approve"], cwd=work, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    ledger = work / ".tfaudit" / "ledger.jsonl"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not (ledger.exists() and b"run.started" in ledger.read_bytes()):
        time.sleep(0.1)
    time.sleep(1.0)  # let terraform start the slow provisioner
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 1, out + err  # as terraform exits when interrupted
    recs = read_ledger(ledger)
    fin = _by_type(recs, "run.finished")[-1]
    assert fin["outcome"]["status"] == "interrupted"
    slow = _resources(recs, fin["run"]["id"])["terraform_data.slow"]
    assert slow["status"] in ("interrupted", "failed")


def test_eight_concurrent_applies_share_one_ledger(tf_workdir: Callable[[str], Path], keypair: tuple[Path, Path],
                                                   base_env: dict[str, str], tmp_path: Path,
                                                   run_tfaudit: Callable[..., CliResult]) -> None:
    ledger = tmp_path / "shared-ledger.jsonl"
    env = {**base_env, "TFAUDIT_SIGNING_KEY": str(keypair[0]), "TFAUDIT_LEDGER": str(ledger)}
    dirs = []
    for i in range(8):
        d = tf_workdir("quickstart")
        dirs.append(d.rename(tmp_path / f"qs{i}"))
    procs = [subprocess.Popen([sys.executable, "-m", "tfaudit", "apply", "-auto-approve"], cwd=d, env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE) for d in dirs]
    for p in procs:
        p.communicate(timeout=300)
        assert p.returncode == 0
    v = run_tfaudit("verify", str(ledger), "--public-key", str(keypair[1]))
    assert v.returncode == 0, v.output
    assert "in 8 runs verified" in v.stdout


def test_failed_plan_is_recorded_and_nothing_applied(e2e: dict[str, Any]) -> None:
    r = e2e["apply"]("-auto-approve", "-var", "gen=not-a-number")
    assert r.returncode == 1
    assert "Invalid value for input variable" in r.output  # terraform's own error, unchanged
    recs = read_ledger(e2e["ledger"])
    assert [x["type"] for x in recs] == ["run.started", "run.finished"]
    assert recs[1]["outcome"]["status"] == "failed"
    assert recs[1]["outcome"]["reason"] == "terraform plan failed"
    assert not (e2e["work"] / "terraform.tfstate").exists()


def test_plain_apply_does_not_import_boto3(e2e: dict[str, Any], base_env: dict[str, str]) -> None:
    code = ("import sys; from tfaudit.cli.app import main; rc = main(['apply', '-auto-approve']); "
            "print('RC', rc, 'BOTO3' if 'boto3' in sys.modules else 'NO-BOTO3')")
    env = {**base_env, "TFAUDIT_SIGNING_KEY": str(e2e["priv"])}
    res = subprocess.run([sys.executable, "-c", code], cwd=e2e["work"], env=env, capture_output=True, text=True)
    assert "RC 0 NO-BOTO3" in res.stdout, res.stdout + res.stderr


def test_a_fifo_as_the_signing_key_is_refused_before_terraform_runs(e2e: dict[str, Any]) -> None:
    """A FIFO given as the key used to hang the apply: it is refused at once, with one line, and
    terraform changes nothing."""
    import os
    import time

    work = e2e["work"]
    fifo = work / "key.fifo"
    os.mkfifo(fifo, 0o600)
    t0 = time.monotonic()
    r = e2e["apply"]("-auto-approve", env={"TFAUDIT_SIGNING_KEY": str(fifo)}, timeout=60)
    assert r.returncode == 4, r.stderr
    assert f"signing key {fifo} is not a regular file" in r.stderr and "Traceback" not in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1
    assert time.monotonic() - t0 < 30  # refused, not hung until the harness's timeout
    assert not (work / "terraform.tfstate").exists()
