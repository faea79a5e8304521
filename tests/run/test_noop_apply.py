"""An apply with nothing to apply: terraform is not started again, and nothing a user or the
ledger sees changes (real terraform; tfaudit.run.noop)."""

from __future__ import annotations

import json
import os
import re
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from conftest import read_ledger, require_terraform
from tfaudit.parse.plan import Plan, parse_plan
from tfaudit.run import apply as apply_mod
from tfaudit.run import noop
from tfaudit.terraform.args import split_args
from tfaudit.terraform.binary import detect

pytestmark = [pytest.mark.slow, pytest.mark.terraform]

# what differs between two runs of the same command: ids, times, the plan file's own bytes
_VOLATILE = {"id", "time", "chain", "signature", "duration_seconds", "sha256", "plan_sha256", "elapsed_seconds",
             "started_at"}


def _stable(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _stable(v) for k, v in value.items() if k not in _VOLATILE}
    if isinstance(value, list):
        return [_stable(v) for v in value]
    return value


def _terraform(args: list[str], cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    res = subprocess.run([require_terraform(), *args], cwd=cwd, env=env, capture_output=True, text=True,
                         timeout=300, stdin=subprocess.DEVNULL)
    assert res.returncode == 0, res.stdout + res.stderr
    return res


def _events(text: str) -> list[dict[str, Any]]:
    return [{k: v for k, v in json.loads(line).items() if k != "@timestamp"} for line in text.splitlines()]


def test_the_events_shown_are_those_terraform_prints_applying_the_plan(
        tf_workdir: Callable[[str], Path], base_env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    d = tf_workdir("noop")
    _terraform(["apply", "-auto-approve"], d, base_env)
    _terraform(["plan", "-out=noop.tfplan"], d, base_env)
    plan = parse_plan(_terraform(["show", "-json", "noop.tfplan"], d, base_env).stdout)
    monkeypatch.chdir(d)
    tf = detect(None, base_env, None)
    ours = noop.apply_events(tf, plan, d / "noop.tfplan", split_args(["-auto-approve"]), diagnosed=False)
    assert ours is not None
    theirs = _terraform(["apply", "-json", "noop.tfplan"], d, base_env).stdout
    # byte for byte but the time: HTML-escaped and non-ASCII text, nested values, a sensitive output
    assert [json.loads(e) | {"@timestamp": ""} for e in ours] == [
        e | {"@timestamp": ""} for e in map(json.loads, theirs.splitlines()[1:])]
    def untimed(line: str) -> str:
        return re.sub(r'"@timestamp":"[^"]*",', "", line)

    assert [untimed(e.decode()) for e in ours] == [untimed(line + "\n") for line in theirs.splitlines()[1:]]
    # with drift, an option that writes elsewhere, or a warning, terraform applies it
    assert noop.apply_events(tf, plan, d / "noop.tfplan", split_args(["-state-out=x"]), diagnosed=False) is None
    assert noop.apply_events(tf, plan, d / "noop.tfplan", split_args([]), diagnosed=True) is None
    assert noop.apply_events(tf, plan, d / "noop.tfplan", split_args(["-refresh-only"]), diagnosed=False) is None
    state = d / "terraform.tfstate"
    state.write_text(state.read_text().replace('"gen": 1', '"gen": 7', 1))  # the state moved since the plan
    assert noop.apply_events(tf, plan, d / "noop.tfplan", split_args([]), diagnosed=False) is None


def _as_the_cli_sees_it(m: pytest.MonkeyPatch, d: Path, env: dict[str, str]) -> None:
    """In directory d with exactly env's TF_/TFAUDIT_ variables, as a subprocess given env would be."""
    m.chdir(d)
    for k in [k for k in os.environ if k.startswith(("TF_", "TFAUDIT_"))]:
        m.delenv(k)
    for k, v in env.items():
        m.setenv(k, v)


def _apply_in_process(d: Path, env: dict[str, str], monkeypatch: pytest.MonkeyPatch, *, fast: bool,
                      args: list[str]) -> tuple[list[bytes] | None, bool]:
    """`tfaudit apply ARGS` in this process (to watch or turn off the fast paths): the events the
    no-apply path gave, and whether the plan was read from the plan file (no `terraform show`)."""
    from tfaudit.cli.app import main

    seen: list[list[bytes] | None] = []
    read: list[bool] = []
    real_events, real_unchanged = noop.apply_events, noop.unchanged_plan

    def events(*a: Any, **k: Any) -> list[bytes] | None:
        seen.append(real_events(*a, **k) if fast else None)
        return seen[-1]

    def unchanged(*a: Any, **k: Any) -> Plan | None:
        plan = real_unchanged(*a, **k) if fast else None
        read.append(plan is not None)
        return plan

    with monkeypatch.context() as m:
        _as_the_cli_sees_it(m, d, env)
        m.setattr(apply_mod, "apply_events", events)
        m.setattr(apply_mod, "unchanged_plan", unchanged)
        assert main(["apply", *args]) == 0
    assert len(seen) == 1 and len(read) == 1
    return seen[0], read[0]


@pytest.mark.parametrize("fixture", ["noop", "noop-plain"])
@pytest.mark.parametrize("args", [["-auto-approve"], ["-auto-approve", "-json"], []], ids=["plain", "json", "prompt"])
def test_a_run_with_nothing_to_apply_records_what_it_recorded_when_terraform_applied_it(
        tf_workdir: Callable[[str], Path], base_env: dict[str, str], keypair: tuple[Path, Path],
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], args: list[str], fixture: str) -> None:
    """noop marks values sensitive: its plan is shown by terraform (the secrets are learned from the
    JSON); noop-plain marks nothing sensitive: its plan is read from the plan file."""
    d = tf_workdir(fixture)
    env = {**base_env, "TFAUDIT_SIGNING_KEY": str(keypair[0])}
    _terraform(["apply", "-auto-approve"], d, base_env)
    state = d / "terraform.tfstate"
    before = state.stat().st_mtime_ns, state.read_bytes()
    assert _apply_in_process(d, env, monkeypatch, fast=False, args=args) == (None, False)  # terraform applies it
    assert state.read_bytes() == before[1] and state.stat().st_mtime_ns != before[0]  # rewritten, unchanged
    slow_screen = capsys.readouterr()
    mtime = state.stat().st_mtime_ns
    shown, from_file = _apply_in_process(d, env, monkeypatch, fast=True, args=args)
    assert shown is not None  # tfaudit shows it
    assert from_file is (fixture == "noop-plain")
    assert state.read_bytes() == before[1] and state.stat().st_mtime_ns == mtime  # terraform did not run
    fast_screen = capsys.readouterr()

    recs = read_ledger(d / ".tfaudit" / "ledger.jsonl")
    runs: dict[str, list[dict[str, Any]]] = {}
    for r in recs:
        runs.setdefault(r["run"]["id"], []).append(r)
    assert len(runs) == 2
    slow, fast = (_stable(rs) for rs in runs.values())
    assert [r["type"] for r in fast] == ["run.started", "run.finished"]
    assert fast == slow
    assert fast[0]["plan"]["resource_drift"] == [] and fast[1]["outcome"]["status"] == "succeeded"
    assert fast[0]["plan"]["format_version"] == "1.2"
    if "-json" in args:
        key = json.dumps  # refresh events come in parallel: compare them as multisets
        assert sorted(map(key, _events(fast_screen.out))) == sorted(map(key, _events(slow_screen.out)))
        assert [e["type"] for e in _events(fast_screen.out)][-2:] == ["change_summary", "outputs"]
    else:  # the same lines (terraform refreshes resources in parallel: their order varies)
        assert sorted(fast_screen.out.splitlines()) == sorted(slow_screen.out.splitlines())
        last = fast_screen.out.splitlines()[-1]  # outputs come last, sorted by name
        assert last == "secret = <sensitive>" if fixture == "noop" else last.startswith("plain = ")
    slow_id, fast_id = list(runs)
    assert fast_screen.err == slow_screen.err.replace(slow_id[:8], fast_id[:8])
    assert "hunter2-noop" not in json.dumps(recs) + fast_screen.out + fast_screen.err


def test_drift_is_applied_by_terraform() -> None:
    """terraform_data never drifts, so the plan is terraform's JSON with a drifted bucket in it."""
    drifted = {"address": "aws_s3_bucket.b", "mode": "managed", "type": "aws_s3_bucket", "name": "b",
               "provider_name": "registry.terraform.io/hashicorp/aws",
               "change": {"actions": ["update"], "before": {"tags": {}}, "after": {"tags": {"x": "1"}},
                          "after_unknown": {}, "before_sensitive": {}, "after_sensitive": {}}}
    doc = {"format_version": "1.2", "applyable": False, "complete": True, "errored": False,
           "resource_changes": [], "output_changes": {}}
    assert noop.nothing_to_apply(parse_plan(json.dumps(doc)))
    assert not noop.nothing_to_apply(parse_plan(json.dumps({**doc, "resource_drift": [drifted]})))
    assert not noop.nothing_to_apply(parse_plan(json.dumps({**doc, "applyable": True})))


def test_check_results_are_applied_by_terraform(
        tf_workdir: Callable[[str], Path], base_env: dict[str, str], keypair: tuple[Path, Path],
        monkeypatch: pytest.MonkeyPatch) -> None:
    d = tf_workdir("noop")
    env = {**base_env, "TFAUDIT_SIGNING_KEY": str(keypair[0])}
    _terraform(["apply", "-auto-approve"], d, base_env)
    (d / "check.tf").write_text('check "sane" {\n  assert {\n    condition     = var.gen > 0\n'
                                '    error_message = "gen must be positive"\n  }\n}\n')
    _terraform(["apply", "-auto-approve"], d, base_env)
    assert _apply_in_process(d, env, monkeypatch, fast=True, args=["-auto-approve"]) == (None, False)
    recs = read_ledger(d / ".tfaudit" / "ledger.jsonl")
    assert recs[0]["plan"]["checks"] == [{"address": "check.sane", "kind": "check", "status": "pass", "problems": []}]


@pytest.mark.parametrize("fixture", ["noop", "noop-plain"])
def test_a_plan_with_nothing_to_do_is_recorded_as_terraform_shows_it(
        tf_workdir: Callable[[str], Path], base_env: dict[str, str], keypair: tuple[Path, Path],
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], fixture: str) -> None:
    """`tfaudit plan` (the everyday CI step): noop-plain's plan is read from the plan file, noop's
    (values marked sensitive) from `terraform show -json`; the plan.recorded records are the same."""
    from tfaudit.cli.app import main
    from tfaudit.parse import planfile

    d = tf_workdir(fixture)
    env = {**base_env, "TFAUDIT_SIGNING_KEY": str(keypair[0])}
    _terraform(["apply", "-auto-approve"], d, base_env)
    real = planfile.unchanged_plan
    read: list[bool] = []

    def spy(path: Path) -> Plan | None:
        plan = real(path)
        read.append(plan is not None)
        return plan

    screens = []
    for fast in (False, True):
        with monkeypatch.context() as m:
            _as_the_cli_sees_it(m, d, env)
            m.setattr(planfile, "unchanged_plan", spy if fast else lambda path: None)
            assert main(["plan", "-detailed-exitcode"]) == 0
        screens.append(capsys.readouterr())
    assert read == [fixture == "noop-plain"]
    slow, fast_rec = (_stable(r) for r in read_ledger(d / ".tfaudit" / "ledger.jsonl"))
    assert slow["type"] == fast_rec["type"] == "plan.recorded"
    assert fast_rec == slow
    assert sorted(screens[0].out.splitlines()) == sorted(screens[1].out.splitlines())
    assert "No changes." in screens[1].out
