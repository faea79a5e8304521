"""tfaudit log: runs newest first, filters, JSON, several ledgers, a progress bar only on a terminal."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from conftest import CliResult, on_a_terminal
from trail_factory import Res, add_run
from tfaudit.trail.signing import load_signer


def _ago(days: float) -> str:
    return (datetime.now(timezone.utc) - timedelta(days=days)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@pytest.fixture
def trail(tmp_path: Path, keypair: tuple[Path, Path]) -> dict[str, object]:
    signer = load_signer(keypair[0])
    a, b = tmp_path / "team-a.jsonl", tmp_path / "team-b.jsonl"
    ids = {
        "old": add_run(a, signer, time="2020-01-02T03:04:05.000000Z", actor="alice", workspace="prod",
                       resources=[Res("terraform_data.x", "create")]),
        "bob_fail": add_run(a, signer, time=_ago(3), actor="bob", workspace="prod", status="partial",
                            resources=[Res("terraform_data.x"), Res("terraform_data.y", "create", "failed", error="boom")]),
        "plan": add_run(a, signer, time=_ago(2), actor="carol@example.com", workspace="staging", command="plan",
                        resources=[Res("terraform_data.z", "delete")]),
        "b_new": add_run(b, signer, time=_ago(1), actor="alice", workspace="dev",
                         resources=[Res("terraform_data.d", "replace")]),
    }
    return {"a": a, "b": b, "ids": ids}


def _lines(res: CliResult) -> list[str]:
    assert res.returncode == 0, res.output
    return [line for line in res.stdout.splitlines() if line.strip()]


def test_runs_newest_first_one_line_each_across_ledgers(trail: dict, run_tfaudit: Callable[..., CliResult]) -> None:
    ids = trail["ids"]
    lines = _lines(run_tfaudit("log", str(trail["a"]), str(trail["b"])))
    assert [line[-9:-1] for line in lines] == [ids[k][:8] for k in ("b_new", "plan", "bob_fail", "old")]
    # time, actor, workspace, command, outcome, counts
    assert re.match(r"^2020-01-02 03:04:05Z  alice\s+prod\s+apply\s+succeeded\s+1 succeeded  \[", lines[-1])
    bob = lines[2]
    assert "bob" in bob and "partial" in bob and "1 failed, 1 succeeded" in bob
    assert "planned" in lines[1] and "1 delete" in lines[1]


def test_the_same_ledger_twice_counts_each_run_once(trail: dict, run_tfaudit: Callable[..., CliResult]) -> None:
    assert len(_lines(run_tfaudit("log", str(trail["a"]), str(trail["a"])))) == 3


def test_filters_combine(trail: dict, run_tfaudit: Callable[..., CliResult]) -> None:
    a, b, ids = str(trail["a"]), str(trail["b"]), trail["ids"]

    def ids_of(*args: str) -> list[str]:
        res = run_tfaudit("log", a, b, "--format", "json", *args)
        assert res.returncode == 0, res.output
        return [r["run_id"] for r in json.loads(res.stdout)]

    assert ids_of("--since", "7d") == [ids["b_new"], ids["plan"], ids["bob_fail"]]
    assert ids_of("--until", "2021-01-01") == [ids["old"]]
    assert ids_of("--since", "2019-12-31T00:00:00Z", "--until", _ago(2.5)) == [ids["bob_fail"], ids["old"]]
    assert ids_of("--actor", "alice") == [ids["b_new"], ids["old"]]
    assert ids_of("--actor", "*@example.com") == [ids["plan"]]
    assert ids_of("--workspace", "prod", "--outcome", "partial") == [ids["bob_fail"]]
    assert ids_of("--outcome", "planned,partial") == [ids["plan"], ids["bob_fail"]]
    assert ids_of("--workspace", "st*", "--actor", "alice") == []


def test_json_has_counts_and_outcome(trail: dict, run_tfaudit: Callable[..., CliResult]) -> None:
    res = run_tfaudit("log", str(trail["a"]), "--format", "json", "--outcome", "partial")
    (run,) = json.loads(res.stdout)
    assert run["status"] == "partial" and run["actor"] == "bob" and run["workspace"] == "prod"
    assert run["counts"] == {"failed": 1, "succeeded": 1} and run["command"] == "apply"


def test_bad_filter_values_are_usage_errors(trail: dict, run_tfaudit: Callable[..., CliResult]) -> None:
    res = run_tfaudit("log", str(trail["a"]), "--outcome", "sucess")
    assert res.returncode == 64 and "'sucess' is not an outcome" in res.stderr
    res = run_tfaudit("log", str(trail["a"]), "--since", "yesterday-ish")
    assert res.returncode == 64 and "is not a date" in res.stderr
    res = run_tfaudit("log", str(trail["a"]) + ".missing")
    assert res.returncode == 64 and "does not exist" in res.stderr
    assert "Traceback" not in res.stderr


def test_default_ledger_from_env_and_no_match_message(trail: dict, run_tfaudit: Callable[..., CliResult],
                                                        tmp_path: Path) -> None:
    res = run_tfaudit("log", "--actor", "nobody", cwd=tmp_path, env={"TFAUDIT_LEDGER": str(trail["a"])})
    assert res.returncode == 0 and res.stdout.strip() == "no runs match"
    res = run_tfaudit("log", cwd=tmp_path)
    assert res.returncode == 64 and "no ledger given" in res.stderr


# --- progress: a bar on a terminal, nothing on a pipe ----------------------------------------------
@pytest.fixture(scope="module")
def big_ledger(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from tfaudit.trail.signing import generate_keypair

    d = tmp_path_factory.mktemp("big")
    signer = load_signer(generate_keypair(d / "k")[0])
    path = d / "big.jsonl"
    for i in range(40):  # ~0.5 MB: past the bar's threshold
        add_run(path, signer, time=_ago(40 - i), actor=f"user{i % 3}",
                resources=[Res(f"terraform_data.r{j}") for j in range(10)])
    assert path.stat().st_size > 300_000
    return path


def test_progress_bar_on_a_terminal_only(big_ledger: Path, base_env: dict[str, str]) -> None:
    env = {**base_env, "TFAUDIT_LOG_FORMAT": "console"}
    piped = subprocess.run([sys.executable, "-m", "tfaudit", "log", str(big_ledger)], env=env,
                           capture_output=True, text=True, timeout=60)
    assert piped.returncode == 0 and piped.stderr == ""
    assert len(piped.stdout.splitlines()) == 40

    # stderr on a pseudo-terminal, stdout captured apart: the bar goes to the terminal only (while the
    # whole ledger is read: here, building the run index the piped read above left behind)
    big_ledger.with_name(big_ledger.name + ".runs").unlink()
    res = on_a_terminal(["log", str(big_ledger)], env=env, timeout=60)
    seen, out = res.drawn, res.piped
    assert res.returncode == 0
    assert "reading ledgers [" in seen and "100.0%" in seen
    assert "reading ledgers" not in out and len(out.splitlines()) == 40


# --- the S3 sink's objects ----------------------------------------------------------------------
@pytest.mark.slow
def test_log_reads_the_s3_sinks_objects(trail: dict, run_tfaudit: Callable[..., CliResult], moto_server: object) -> None:
    import uuid

    from tfaudit.sinks.s3 import object_key

    s3 = moto_server.client("s3")  # type: ignore[attr-defined]
    bucket = f"audit-{uuid.uuid4().hex[:12]}"
    s3.create_bucket(Bucket=bucket)
    by_run: dict[str, list[bytes]] = {}
    for line in Path(trail["a"]).read_bytes().splitlines():
        rec = json.loads(line)
        by_run.setdefault(rec["run"]["id"], []).append(line)
    for run_id, lines in by_run.items():
        first = json.loads(lines[0])
        key = object_key("team-a", first["run"]["started_at"], first["run"]["workspace"], run_id)
        s3.put_object(Bucket=bucket, Key=key, Body=b"\n".join(lines) + b"\n")
    s3.put_object(Bucket=bucket, Key="elsewhere/x.jsonl", Body=b"{}\n")  # outside the prefix

    env = moto_server.aws_env()  # type: ignore[attr-defined]
    from_s3 = run_tfaudit("log", f"s3://{bucket}/team-a", "--format", "json", env=env)
    assert from_s3.returncode == 0, from_s3.output
    local = run_tfaudit("log", str(trail["a"]), "--format", "json")
    strip = lambda runs: [{k: v for k, v in r.items() if k != "ledger"} for r in json.loads(runs)]  # noqa: E731
    assert strip(from_s3.stdout) == strip(local.stdout) and len(json.loads(local.stdout)) == 3

    missing = run_tfaudit("log", f"s3://{bucket}-nope/team-a", env=env)
    assert missing.returncode == 64 and "NoSuchBucket" in missing.stderr and "Traceback" not in missing.stderr


def test_reading_a_local_ledger_never_imports_boto3(trail: dict, base_env: dict[str, str]) -> None:
    code = ("import sys\nfrom tfaudit.cli.app import main\n"
            f"rc = main(['log', {str(trail['a'])!r}, '--format', 'json'])\n"
            "assert rc == 0\nprint('boto3' in sys.modules, 'botocore' in sys.modules)")
    res = subprocess.run([sys.executable, "-c", code], env=base_env, capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip().splitlines()[-1] == "False False"


def test_drift_and_state_command_runs_show_their_own_outcome(tmp_path: Path, keypair: tuple[Path, Path]) -> None:
    from tfaudit import records as recmod
    from tfaudit.trail.ledger import Ledger
    from tfaudit.query import runs
    from tfaudit.trail.signing import load_signer

    def run(command: str) -> recmod.RunInfo:
        return recmod.RunInfo(id=recmod.RunId(recmod.new_id()), command=command, args=(), tool="terraform",
                              tool_version="1.11.4", workspace="default", working_dir="/w")

    state_run, drift_run = run("state rm"), run("drift")
    ledger = tmp_path / "l.jsonl"
    Ledger(ledger).append([
        recmod.base_record("state.changed", state_run, {"user": "bob"}, detail={
            "command": "state rm", "exit_code": 0, "status": "succeeded", "changed": True,
            "state": {"before": None, "after": None}, "appeared": [], "vanished": ["a.b"], "moved": []}),
        *[recmod.base_record("drift.detected", drift_run, {"user": "cron"}, detail={
            "address": f"aws_s3_bucket.b{i}", "type": "aws_s3_bucket", "actions": ["update"],
            "changed_paths": ["tags.team"], "before": {}, "after": {}}) for i in range(2)],
    ], load_signer(keypair[0]))
    by_cmd = {r.command: r for r in runs([ledger])}
    assert by_cmd["state rm"].status == "succeeded" and by_cmd["state rm"].exit_code == 0
    assert by_cmd["drift"].status == "drifted" and by_cmd["drift"].counts == {"drifted": 2}
