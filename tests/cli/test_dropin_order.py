"""The order of terraform's screen, not only its lines: `tfaudit apply` beside `terraform apply` on
identical copies of fixtures/outputs-before-apply.

test_dropin.py compares lines as multisets, as parallel resources make terraform's order vary. With
one resource the order is fixed, so here the whole screen is compared in order (IDs and durations
replaced), and the sequence of its landmarks is named in the message when they differ. The bug this
pins: with -auto-approve, "Changes to Outputs:" came after "Creating..." (held back with the plan's
warnings), and a warning given by both tfaudit's plan step and its apply step was shown twice.
"""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from conftest import require_terraform

pytestmark = [pytest.mark.slow, pytest.mark.terraform]

TFAUDIT = [sys.executable, "-m", "tfaudit"]
_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
_ANSI = re.compile(r"\x1b\[[0-9;]*m")
_LANDMARK = re.compile(r"^[│ ]*((Plan|Warning|Error): .*|Changes to Outputs:|No changes\.|Outputs:|Apply complete!.*"
                       r"|Destroy complete!.*|Do you .*\?|\S+: (Creating|Creation complete|Destroying|Destruction)\S*)")

# name: (extra arguments, terraform.tfvars (auto-loaded: applying tfaudit's plan file warns again), with an output)
SCENARIOS: dict[str, tuple[list[str], str | None, bool]] = {
    "outputs": ([], None, True),
    "check-warning": (["-var", "v=a"], None, True),
    "undeclared-variable": ([], "foo = 1\n", True),
    "both-warnings": (["-var", "v=a"], "foo = 1\n", True),
    "warning-no-outputs": ([], "foo = 1\n", False),
}


def screen(text: str) -> str:
    text = _UUID.sub("<ID>", text.replace("\r\n", "\n"))
    return re.sub(r"after \d+(h\d+m\d+s|m\d+s|s)", "after <D>", text)


def landmarks(text: str) -> list[str]:
    """The screen's sections in order: "Plan: ...", "Changes to Outputs:", "x: Creating...", warnings..."""
    found = (_LANDMARK.match(_ANSI.sub("", line)) for line in screen(text).splitlines())
    return [m.group(1) for m in found if m]


def _run(argv: list[str], cwd: Path, env: dict[str, str], stdin: str | None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, cwd=cwd, env=env, input=stdin, stdin=None if stdin is not None else subprocess.DEVNULL,
                          capture_output=True, text=True, timeout=300)


@pytest.fixture
def twins(tf_workdir: Callable[[str], Path], base_env: dict[str, str], keypair: tuple[Path, Path],
          tmp_path: Path) -> Callable[[str], dict[str, Any]]:
    """Two identical copies of the fixture for one scenario: one for terraform, one for tfaudit."""
    env = {**base_env, "TFAUDIT_SIGNING_KEY": str(keypair[0])}
    env.pop("TF_IN_AUTOMATION", None)  # the screen a person sees

    def make(scenario: str) -> dict[str, Any]:
        _, tfvars, with_output = SCENARIOS[scenario]
        dirs = {}
        for side in ("terraform", "tfaudit"):
            d = tf_workdir("outputs-before-apply").rename(tmp_path / side)
            if tfvars:
                (d / "terraform.tfvars").write_text(tfvars)
            if not with_output:
                (d / "outputs.tf").unlink()
            dirs[side] = d
        return {"tf": require_terraform(), "env": env, **dirs}

    return make


def _assert_same_in_order(pair: dict[str, Any], args: list[str], stdin: str | None = None) -> list[str]:
    tf = _run([pair["tf"], *args], pair["terraform"], pair["env"], stdin)
    ta = _run([*TFAUDIT, *args], pair["tfaudit"], pair["env"], stdin)
    assert ta.returncode == tf.returncode, ta.stderr
    assert landmarks(ta.stdout) == landmarks(tf.stdout)
    assert screen(ta.stdout) == screen(tf.stdout)  # byte for byte, colour codes and blank lines included
    ours = screen(ta.stderr).splitlines()
    assert ours[:-1] == screen(tf.stderr).splitlines() and ours[-1].startswith("tfaudit: recorded run ")
    return landmarks(tf.stdout)


@pytest.mark.parametrize("color", [False, True], ids=["no-color", "colour"])
@pytest.mark.parametrize("scenario", list(SCENARIOS))
def test_auto_approve_screen_is_terraforms_in_order(twins: Callable[[str], dict[str, Any]], scenario: str,
                                                    color: bool) -> None:
    pair = twins(scenario)
    args, tfvars, with_output = SCENARIOS[scenario]
    seen = _assert_same_in_order(pair, ["apply", "-auto-approve", *args, *([] if color else ["-no-color"])])
    # what the comparison stands on: the outputs right after the plan, each warning once, after the apply
    expected = ["Plan: 1 to add, 0 to change, 0 to destroy.", *(["Changes to Outputs:"] if with_output else []),
                "terraform_data.x: Creating...", "terraform_data.x: Creation complete"]
    assert seen[:len(expected)] == expected
    warnings = [x for x in seen if x.startswith("Warning: ")]
    assert warnings == [*(["Warning: Value for undeclared variable"] if tfvars else []),
                        *(["Warning: Check block assertion failed"] if "v=a" in args else [])]
    assert seen[len(expected) + len(warnings)].startswith("Apply complete!")


@pytest.mark.parametrize("color", [False, True], ids=["no-color", "colour"])
def test_prompted_apply_and_destroy_screens_are_terraforms_in_order(twins: Callable[[str], dict[str, Any]],
                                                                   color: bool) -> None:
    pair = twins("both-warnings")
    nc = [] if color else ["-no-color"]
    seen = _assert_same_in_order(pair, ["apply", "-var", "v=a", *nc], stdin="yes\n")
    # with a prompt the plan's warnings come before it; after the apply only the apply's own
    assert seen.index("Warning: Check block assertion failed") < seen.index("Do you want to perform these actions?")
    assert seen.count("Warning: Value for undeclared variable") == 1
    _assert_same_in_order(pair, ["destroy", "-var", "v=a", *nc], stdin="yes\n")


@pytest.mark.parametrize("color", [False, True], ids=["no-color", "colour"])
def test_failed_plan_shows_its_warnings_in_place(twins: Callable[[str], dict[str, Any]], color: bool) -> None:
    pair = twins("undeclared-variable")
    for side in ("terraform", "tfaudit"):  # a precondition that fails at plan time, after x is planned
        (pair[side] / "fails.tf").write_text(
            'resource "terraform_data" "y" {\n  lifecycle {\n    precondition {\n'
            '      condition     = terraform_data.x.input == "nope"\n      error_message = "not nope"\n    }\n  }\n}\n')
    args = ["apply", "-auto-approve", *([] if color else ["-no-color"])]
    tf = _run([pair["tf"], *args], pair["terraform"], pair["env"], None)
    ta = _run([*TFAUDIT, *args], pair["tfaudit"], pair["env"], None)
    assert ta.returncode == tf.returncode == 1 and "Resource precondition failed" in tf.stderr
    assert screen(ta.stdout) == screen(tf.stdout)
    assert landmarks(tf.stdout)[-2:] == ["Changes to Outputs:", "Warning: Value for undeclared variable"]


def test_json_events_come_in_terraforms_order(twins: Callable[[str], dict[str, Any]]) -> None:
    """With -json too: the plan's warnings after the apply's events, once, the check block's the apply's."""
    import json

    pair = twins("both-warnings")
    args = ["apply", "-json", "-auto-approve", "-var", "v=a"]
    tf = _run([pair["tf"], *args], pair["terraform"], pair["env"], None)
    ta = _run([*TFAUDIT, *args], pair["tfaudit"], pair["env"], None)
    assert ta.returncode == tf.returncode == 0

    def sequence(text: str) -> list[tuple[str, str]]:
        return [(e["type"], e.get("diagnostic", {}).get("summary", "")) for e in map(json.loads, text.splitlines())]

    assert sequence(ta.stdout) == sequence(tf.stdout)
    assert [s for t, s in sequence(tf.stdout) if t == "diagnostic"] == ["Value for undeclared variable",
                                                                        "Check block assertion failed"]


# Every kind of warning terraform 1.11 gives from a check block at plan time (internal/terraform:
# eval_conditions.go, lang.EvalCheckErrorMessage, a scoped data source's diagnostics turned into
# warnings). `terraform apply` without a prompt drops the plan's (backend_apply.go: the diagnostics
# marked with a check rule) and shows the apply's: name: (checks.tf, the warnings after the apply)
CHECK_WARNINGS: dict[str, tuple[str, list[str]]] = {
    # offline, a local backend with no state file: "Unable to find remote state", read at plan and at apply
    "scoped-data-source": ('check "remote" {\n  data "terraform_remote_state" "gone" {\n    backend = "local"\n'
                           '    config = {\n      path = "${path.module}/nonexistent.tfstate"\n    }\n  }\n'
                           '  assert {\n    condition     = terraform_data.x.input == "hello"\n'
                           '    error_message = "x is not hello"\n  }\n}\n', ["Warning: Unable to find remote state"]),
    # unknown until x exists: a warning at plan, passed at apply
    "known-after-apply": ('check "later" {\n  assert {\n    condition     = terraform_data.x.output == "hello"\n'
                          '    error_message = "x is not hello"\n  }\n}\n', []),
    "several-asserts": ('check "two" {\n  assert {\n    condition     = terraform_data.x.input == "a"\n'
                        '    error_message = "first"\n  }\n  assert {\n    condition     = terraform_data.x.input == "b"\n'
                        '    error_message = "second"\n  }\n}\n', ["Warning: Check block assertion failed"] * 2),
    "ephemeral-message": ('variable "e" {\n  type      = string\n  default   = "eph"\n  ephemeral = true\n}\n\n'
                          'check "eph" {\n  assert {\n    condition     = var.e == "eph"\n'
                          '    error_message = "e is ${var.e}"\n  }\n}\n',
                          ["Warning: Error message refers to ephemeral values"]),
}


@pytest.mark.parametrize("color", [False, True], ids=["no-color", "colour"])
@pytest.mark.parametrize("kind", list(CHECK_WARNINGS))
def test_check_block_warnings_of_the_plan_are_dropped_as_terraform_does(
        twins: Callable[[str], dict[str, Any]], kind: str, color: bool) -> None:
    """Told apart by where they come from (a check block's assertion or scoped data source), not
    by one title: before, all but "Check block assertion failed" were shown twice."""
    pair = twins("outputs")
    checks, after = CHECK_WARNINGS[kind]
    for side in ("terraform", "tfaudit"):
        (pair[side] / "checks.tf").write_text(checks)
    seen = _assert_same_in_order(pair, ["apply", "-auto-approve", *([] if color else ["-no-color"])])
    done = next(i for i, x in enumerate(seen) if x.startswith("terraform_data.x: Creation complete"))
    applied = next(i for i, x in enumerate(seen) if x.startswith("Apply complete!"))
    warnings = [x for x in seen if x.startswith("Warning: ")]
    assert warnings == after == [x for x in seen[done:applied] if x.startswith("Warning: ")]  # the apply's, once


def _json_sequence(text: str) -> list[tuple[str, str]]:
    import json

    return [(e["type"], e.get("diagnostic", {}).get("summary", "")) for e in map(json.loads, text.splitlines())]


@pytest.mark.parametrize("fails", [False, True], ids=["applied", "plan-fails"])
def test_json_diagnostics_before_the_plan_stay_in_place(twins: Callable[[str], dict[str, Any]], fails: bool) -> None:
    """What terraform says before planning (a deprecated flag) comes right after "version", once,
    whether the plan fails (its errors then last, where terraform gives them) or is applied."""
    pair = twins("outputs")
    if fails:
        for side in ("terraform", "tfaudit"):
            (pair[side] / "fails.tf").write_text(
                'resource "terraform_data" "y" {\n  lifecycle {\n    precondition {\n'
                '      condition     = terraform_data.x.input == "nope"\n      error_message = "not nope"\n'
                '    }\n  }\n}\n')
    # a failing check beside a failing precondition comes in either order: the check only when applied
    args = ["apply", "-json", "-auto-approve", "-state=other.tfstate", *([] if fails else ["-var", "v=a"])]
    tf = _run([pair["tf"], *args], pair["terraform"], pair["env"], None)
    ta = _run([*TFAUDIT, *args], pair["tfaudit"], pair["env"], None)
    assert ta.returncode == tf.returncode == (1 if fails else 0)
    seq = _json_sequence(tf.stdout)
    assert _json_sequence(ta.stdout) == seq
    assert seq[:2] == [("version", ""), ("diagnostic", "Deprecated flag: -state")]
    diags = [s for t, s in seq if t == "diagnostic"]
    assert diags == ["Deprecated flag: -state", "Resource precondition failed" if fails else "Check block assertion failed"]


@pytest.mark.parametrize("color", [False, True], ids=["no-color", "colour"])
def test_a_deprecated_flag_warns_once(twins: Callable[[str], dict[str, Any]], color: bool) -> None:
    pair = twins("outputs")
    seen = _assert_same_in_order(pair, ["apply", "-auto-approve", "-state=other.tfstate",
                                        *([] if color else ["-no-color"])])
    assert seen[0] == "Warning: Deprecated flag: -state" and seen.count(seen[0]) == 1


def test_json_check_block_warnings_are_the_applys(twins: Callable[[str], dict[str, Any]]) -> None:
    pair = twins("outputs")
    for side in ("terraform", "tfaudit"):
        (pair[side] / "checks.tf").write_text(CHECK_WARNINGS["scoped-data-source"][0]
                                              + CHECK_WARNINGS["known-after-apply"][0])
    args = ["apply", "-json", "-auto-approve"]
    tf = _run([pair["tf"], *args], pair["terraform"], pair["env"], None)
    ta = _run([*TFAUDIT, *args], pair["tfaudit"], pair["env"], None)
    assert ta.returncode == tf.returncode == 0
    assert _json_sequence(ta.stdout) == _json_sequence(tf.stdout)
    assert [s for t, s in _json_sequence(tf.stdout) if t == "diagnostic"] == ["Unable to find remote state"]
