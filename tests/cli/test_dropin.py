"""tfaudit in terraform's place, side by side with the real terraform on the same config.

The golden screen tests run one scenario (create, update, replace, delete, a failing provisioner,
a -target warning) through `terraform` in one copy of fixtures/dropin and through `tfaudit` in
another, and compare the lines each prints as multisets (parallel resources make the order vary),
after replacing IDs and durations with placeholders. Colour codes are compared too; the only
liberty taken: a run of resets at the start of a line counts as one reset (terraform leaves the
plan's closing reset dangling, so whichever resource terraform starts first carries it).
"""

from __future__ import annotations

import json
import os
import pty
import re
import shutil
import struct
import subprocess
import sys
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from conftest import read_terminal, require_terraform

pytestmark = [pytest.mark.slow, pytest.mark.terraform]

TFAUDIT = [sys.executable, "-m", "tfaudit"]
SCENARIO = ["-var", "gen=2", "-target=terraform_data.upd", "-target=terraform_data.repl",
            "-target=terraform_data.gone", "-target=terraform_data.boom"]
SUMMARY = re.compile(r"^tfaudit: recorded (run|plan) [0-9a-f]+ .* in \S+")
_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def normalise(text: str) -> Counter[str]:
    text = text.replace("\r\n", "\n")
    text = _UUID.sub("<ID>", text)
    text = re.sub(r"after \d+(h\d+m\d+s|m\d+s|s)", "after <D>", text)
    text = re.sub(r"\d\dm\d\ds elapsed", "<D> elapsed", text)
    text = re.sub(r"(?m)^(\x1b\[0m)+", "\x1b[0m", text)
    return Counter(text.split("\n"))


def tfaudit_only(tf_text: str, ta_text: str) -> tuple[Counter[str], Counter[str]]:
    """(lines only terraform printed, lines only tfaudit printed)."""
    a, b = normalise(tf_text), normalise(ta_text)
    return a - b, b - a


@pytest.fixture
def pair(tf_workdir: Callable[[str], Path], base_env: dict[str, str], keypair: tuple[Path, Path],
         tmp_path: Path) -> dict[str, Any]:
    """Two applied copies of fixtures/dropin (gen=1): one for terraform, one for tfaudit."""
    tf = require_terraform()
    env = {**base_env, "TFAUDIT_SIGNING_KEY": str(keypair[0])}
    env.pop("TF_IN_AUTOMATION", None)  # the screen a person sees
    dirs = {}
    for side in ("terraform", "tfaudit"):
        d = tf_workdir("dropin")
        d = d.rename(tmp_path / side)
        res = subprocess.run([tf, "apply", "-auto-approve", "-no-color"], cwd=d, env=env, capture_output=True,
                             text=True, timeout=300)
        assert res.returncode == 0, res.stdout + res.stderr
        dirs[side] = d
    return {"tf": tf, "env": env, **dirs}


def _pipe(argv: list[str], cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=300,
                          stdin=subprocess.DEVNULL)


def _pty(argv: list[str], cwd: Path, env: dict[str, str], cols: int = 100) -> tuple[int, str]:
    """Run with stdout and stderr on a pseudo-terminal `cols` wide, as in a terminal window."""
    import fcntl
    import termios

    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, cols, 0, 0))
    proc = subprocess.Popen(argv, cwd=cwd, env=env, stdin=subprocess.DEVNULL, stdout=slave, stderr=slave)
    os.close(slave)
    out = read_terminal(master, 300)
    return proc.wait(timeout=60), out.decode("utf-8", "replace")


def _both(pair: dict[str, Any], args: list[str], *, extra: list[str] | None = None
          ) -> tuple[subprocess.CompletedProcess[str], subprocess.CompletedProcess[str]]:
    tf = _pipe([pair["tf"], *args], pair["terraform"], pair["env"])
    ta = _pipe([*TFAUDIT, *args, *(extra or [])], pair["tfaudit"], pair["env"])
    return tf, ta


def _assert_same_screen(tf: subprocess.CompletedProcess[str], ta: subprocess.CompletedProcess[str],
                        *, quiet: bool = False) -> None:
    assert ta.returncode == tf.returncode, ta.stderr
    only_tf, only_ta = tfaudit_only(tf.stdout, ta.stdout)
    assert not only_tf and not only_ta, f"stdout differs:\nterraform only: {only_tf}\ntfaudit only: {only_ta}"
    only_tf, only_ta = tfaudit_only(tf.stderr, ta.stderr)
    assert not only_tf, f"stderr lines tfaudit lacks: {only_tf}"
    extra = [line for line in only_ta.elements()]
    if quiet:
        assert extra == [], extra
    else:
        assert len(extra) == 1 and SUMMARY.match(extra[0]), extra


@pytest.mark.parametrize("color", [False, True], ids=["no-color", "colour"])
def test_apply_screen_through_a_pipe_is_terraforms(pair: dict[str, Any], color: bool) -> None:
    args = ["apply", "-auto-approve", *SCENARIO, *([] if color else ["-no-color"])]
    tf, ta = _both(pair, args)
    assert tf.returncode == 1 and "with terraform_data.boom[0]," in tf.stderr  # the scenario really fails
    assert ("\x1b[" in ta.stdout) is color
    _assert_same_screen(tf, ta)


def test_apply_screen_with_quiet_has_no_line_of_tfaudits_own(pair: dict[str, Any]) -> None:
    tf, ta = _both(pair, ["apply", "-auto-approve", *SCENARIO], extra=["--quiet"])
    _assert_same_screen(tf, ta, quiet=True)
    assert (pair["tfaudit"] / ".tfaudit" / "ledger.jsonl").is_file()  # quiet, yet recorded


def test_apply_screen_in_a_terminal_is_terraforms(pair: dict[str, Any]) -> None:
    args = ["apply", "-auto-approve", *SCENARIO]
    rc_tf, tf = _pty([pair["tf"], *args], pair["terraform"], pair["env"])
    rc_ta, ta = _pty([*TFAUDIT, *args], pair["tfaudit"], pair["env"])
    assert (rc_tf, rc_ta) == (1, 1)
    only_tf, only_ta = tfaudit_only(tf, ta)
    assert not only_tf, only_tf
    extra = list(only_ta.elements())
    assert len(extra) == 1 and SUMMARY.match(extra[0]), extra
    assert "\x1b[1m\x1b[31mError: \x1b[0m" in ta and "\x1b[32m\n" not in ta  # boxed red error; no completion


def _assert_same_terminal(pair: dict[str, Any], args: list[str]) -> None:
    """One command in a terminal (stdout and stderr on one pty): terraform's lines, plus tfaudit's summary.

    terraform ends a successful apply with a reset and no newline; tfaudit's summary line follows
    it on stderr, so on a shared terminal the two meet on one line (the screen shows the summary line
    alone, where the shell's prompt would have been)."""
    rc_tf, tf = _pty([pair["tf"], *args], pair["terraform"], pair["env"])
    rc_ta, ta = _pty([*TFAUDIT, *args], pair["tfaudit"], pair["env"])
    assert rc_ta == rc_tf, ta
    only_tf, only_ta = tfaudit_only(tf, ta)
    assert set(only_tf) <= {"\x1b[0m"}, only_tf
    extra = [line for line in only_ta.elements() if line]
    assert len(extra) == 1 and SUMMARY.match(extra[0].removeprefix("\x1b[0m")), only_ta
    assert set(only_ta) - {extra[0]} <= {""}


def test_plan_destroy_and_saved_plan_in_a_terminal_are_terraforms(pair: dict[str, Any]) -> None:
    _assert_same_terminal(pair, ["plan"])
    for side in ("terraform", "tfaudit"):
        assert _pipe([pair["tf"], "plan", "-out=saved.tfplan", "-var", "gen=3", "-target=terraform_data.upd"],
                     pair[side], pair["env"]).returncode == 0
    _assert_same_terminal(pair, ["apply", "saved.tfplan"])
    _assert_same_terminal(pair, ["destroy", "-auto-approve"])


@pytest.mark.parametrize("color", [False, True], ids=["no-color", "colour"])
def test_plan_destroy_and_saved_plan_screens_are_terraforms(pair: dict[str, Any], color: bool) -> None:
    nc = [] if color else ["-no-color"]
    _assert_same_screen(*_both(pair, ["plan", *nc]))
    _assert_same_screen(*_both(pair, ["plan", "-out=saved.tfplan", "-var", "gen=3", "-target=terraform_data.upd", *nc]))
    _assert_same_screen(*_both(pair, ["apply", *nc, "saved.tfplan"]))
    _assert_same_screen(*_both(pair, ["destroy", "-auto-approve", *nc]))


def test_apply_json_is_terraforms_event_stream(pair: dict[str, Any]) -> None:
    args = ["apply", "-json", "-auto-approve", *SCENARIO]
    tf, ta = _both(pair, args)
    assert ta.returncode == tf.returncode == 1
    events = [json.loads(line) for line in ta.stdout.splitlines()]  # every line is JSON
    theirs = [json.loads(line) for line in tf.stdout.splitlines()]
    assert {e["type"] for e in events} == {e["type"] for e in theirs}
    assert Counter(e["type"] for e in events) == Counter(e["type"] for e in theirs)
    assert SUMMARY.match(ta.stderr.strip().splitlines()[-1])


def test_apply_json_without_approval_is_terraforms_error_at_once(pair: dict[str, Any]) -> None:
    tf, ta = _both(pair, ["apply", "-json"])
    assert ta.returncode == tf.returncode == 1
    theirs = [json.loads(line) for line in tf.stdout.splitlines()]
    ours = [json.loads(line) for line in ta.stdout.splitlines()]
    assert [e["type"] for e in ours] == [e["type"] for e in theirs] == ["version", "diagnostic"]
    assert ours[1]["diagnostic"] == theirs[1]["diagnostic"]
    assert not (pair["tfaudit"] / ".tfaudit").exists()


@pytest.mark.parametrize("color", [False, True], ids=["no-color", "colour"])
def test_apply_with_nothing_to_change_is_terraforms_screen(pair: dict[str, Any], color: bool) -> None:
    """Nothing to apply: tfaudit shows terraform's ending itself (tfaudit.run.noop), the same screen."""
    state = pair["tfaudit"] / "terraform.tfstate"
    mtime = state.stat().st_mtime_ns
    nc = [] if color else ["-no-color"]
    for args in (["apply", "-auto-approve", *nc], ["apply", *nc]):  # no change: no prompt either way
        tf, ta = _both(pair, args)
        assert tf.returncode == 0 and "No changes." in tf.stdout and "Apply complete!" in tf.stdout
        _assert_same_screen(tf, ta)
    _assert_same_terminal(pair, ["apply", "-auto-approve", *nc])
    tf, ta = _both(pair, ["apply", "-auto-approve", "-json"])
    def events(text: str) -> Counter[str]:
        return Counter(_UUID.sub("<ID>", re.sub(r'"@timestamp":"[^"]*"', "", line)) for line in text.splitlines())

    assert events(ta.stdout) == events(tf.stdout)
    assert state.stat().st_mtime_ns == mtime  # terraform never applied (it rewrites the state, unchanged)


def test_what_terraform_refuses_is_refused_as_terraform_does_with_nothing_recorded(pair: dict[str, Any]) -> None:
    for args in (["apply", "-no-such-flag"], ["plan", "-help"], ["apply", "-help"], ["-chdir=nope", "apply"],
                 ["plan", "-var"]):
        tf, ta = _both(pair, args)
        assert (ta.returncode, ta.stdout, ta.stderr) == (tf.returncode, tf.stdout, tf.stderr), args
    assert not (pair["tfaudit"] / ".tfaudit").exists() and not (pair["tfaudit"] / "nope").exists()
    bad = _pipe([*TFAUDIT, "apply", "--ledgr", "x"], pair["tfaudit"], pair["env"])
    assert bad.returncode == 64 and "no such option: --ledgr (did you mean --ledger?)" in bad.stderr


def test_version_and_help_are_terraforms(pair: dict[str, Any]) -> None:
    from tfaudit import __version__

    tf = _pipe([pair["tf"], "version"], pair["terraform"], pair["env"])
    for args in (["version"], ["-version"], ["-v"]):
        ta = _pipe([*TFAUDIT, *args], pair["tfaudit"], pair["env"])
        assert ta.returncode == 0 and ta.stdout == tf.stdout + f"tfaudit v{__version__}\n", args
    doc = json.loads(_pipe([*TFAUDIT, "version", "-json"], pair["tfaudit"], pair["env"]).stdout)
    assert doc["terraform_version"] and doc["tfaudit_version"] == __version__
    tf_help = _pipe([pair["tf"], "-help"], pair["terraform"], pair["env"])
    ta_help = _pipe([*TFAUDIT, "-help"], pair["tfaudit"], pair["env"])
    assert ta_help.returncode == 0 and ta_help.stdout.startswith(tf_help.stdout)


# --- TF_CLI_ARGS: as on the command the user typed ---------------------------------------------
@pytest.fixture
def env_pair(tf_workdir: Callable[[str], Path], base_env: dict[str, str], keypair: tuple[Path, Path],
             tmp_path: Path) -> dict[str, Any]:
    dirs = {side: tf_workdir("dropin-env").rename(tmp_path / side) for side in ("terraform", "tfaudit")}
    return {"tf": require_terraform(), "env": {**base_env, "TFAUDIT_SIGNING_KEY": str(keypair[0])}, **dirs}


def _applied_x(pair: dict[str, Any], side: str) -> str | None:
    res = _pipe([pair["tf"], "output", "-raw", "x"], pair[side], pair["env"])
    return res.stdout if res.returncode == 0 else None


@pytest.mark.parametrize(("variables", "args", "applied"), [
    ({"TF_CLI_ARGS_apply": "-var=gen=5"}, ["-auto-approve"], "gen-5"),  # planning options reach the plan step
    ({"TF_CLI_ARGS_apply": "-auto-approve"}, [], "gen-1"),  # no prompt
    ({"TF_CLI_ARGS_plan": "-var=gen=6"}, ["-auto-approve"], "gen-1"),  # not for `apply`
    ({"TF_CLI_ARGS": "-var=gen=7"}, ["-auto-approve"], "gen-7"),  # every command
    # terraform puts TF_CLI_ARGS_apply first, then TF_CLI_ARGS: the later -var wins
    ({"TF_CLI_ARGS_apply": "-var=gen=8", "TF_CLI_ARGS": "-var=gen=9"}, ["-auto-approve"], "gen-9"),
    ({"TF_CLI_ARGS_apply": "-var=gen=10"}, ["-auto-approve", "-var=gen=11"], "gen-11"),  # the user's own come last
], ids=["apply-var", "apply-auto-approve", "plan-ignored", "all-commands", "command-then-all", "user-last"])
def test_tf_cli_args_take_effect_as_for_the_typed_command(env_pair: dict[str, Any], variables: dict[str, str],
                                                          args: list[str], applied: str) -> None:
    env = {**env_pair["env"], **variables}
    tf = _pipe([env_pair["tf"], "apply", *args], env_pair["terraform"], env)
    ta = _pipe([*TFAUDIT, "apply", *args], env_pair["tfaudit"], env)
    assert ta.returncode == tf.returncode == 0, ta.stderr
    assert _applied_x(env_pair, "terraform") == _applied_x(env_pair, "tfaudit") == applied
    started = [json.loads(x) for x in (env_pair["tfaudit"] / ".tfaudit" / "ledger.jsonl").read_text().splitlines()
               if '"run.started"' in x][-1]
    # the arguments terraform took are the ones recorded (-var values redacted)
    taken = [a for name, v in variables.items() if name in ("TF_CLI_ARGS", "TF_CLI_ARGS_apply") for a in v.split()]
    assert started["run"]["args"] == [re.sub(r"^-var=gen=.*", "-var=gen=(redacted)", a) for a in [*taken, *args]]


def test_tf_cli_args_plan_for_tfaudit_plan(env_pair: dict[str, Any]) -> None:
    env = {**env_pair["env"], "TF_CLI_ARGS_plan": "-var=gen=4", "TF_CLI_ARGS_apply": "-var=gen=99"}
    tf = _pipe([env_pair["tf"], "plan", "-no-color"], env_pair["terraform"], env)
    ta = _pipe([*TFAUDIT, "plan", "-no-color"], env_pair["tfaudit"], env)
    assert ta.returncode == tf.returncode == 0
    assert '"gen-4"' in ta.stdout and not tfaudit_only(tf.stdout, ta.stdout)[1]


# --- a whole workflow with `terraform` replaced by tfaudit on PATH ----------------------------------
def test_workflow_with_terraform_replaced_by_tfaudit(env_pair: dict[str, Any], tmp_path: Path) -> None:
    real = env_pair["tf"]
    shim_dir = tmp_path / "shim"
    shim_dir.mkdir()
    shim = shim_dir / "terraform"
    shim.write_text(f'#!/bin/sh\nexec "{sys.executable}" -m tfaudit "$@"\n')
    shim.chmod(0o755)
    env = {**env_pair["env"], "TFAUDIT_QUIET": "1"}
    shimmed = {**env, "PATH": f"{shim_dir}{os.pathsep}{env['PATH']}"}
    assert shutil.which("terraform", path=shimmed["PATH"]) == str(shim)
    steps = [["init", "-input=false"], ["validate"], ["fmt", "-check"], ["workspace", "new", "dev"],
             ["plan", "-out=p.tfplan", "-var", "gen=2"], ["apply", "p.tfplan"], ["output", "-json"],
             ["show", "-json"], ["state", "list"], ["destroy", "-auto-approve"]]
    for step in steps:
        tf = _pipe([real, *step], env_pair["terraform"], env)
        ta = _pipe(["terraform", *step], env_pair["tfaudit"], shimmed)
        assert ta.returncode == tf.returncode, (step, ta.stderr)
        if step[0] == "show":
            strip = ("timestamp",)
            a, b = json.loads(tf.stdout), json.loads(ta.stdout)
            for doc in (a, b):
                for k in strip:
                    doc.pop(k, None)
            assert _UUID.sub("<ID>", json.dumps(a)) == _UUID.sub("<ID>", json.dumps(b)), step
        else:
            assert normalise(tf.stdout) == normalise(ta.stdout), step
    ledger = env_pair["tfaudit"] / ".tfaudit" / "ledger.jsonl"
    types = [json.loads(x)["type"] for x in ledger.read_text().splitlines()]
    assert types.count("plan.recorded") == 1 and types.count("run.finished") == 2  # apply PLAN and destroy
