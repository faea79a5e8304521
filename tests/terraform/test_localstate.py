"""Reading a local backend's state file gives exactly what `terraform state pull` prints, or
nothing when tfaudit cannot be sure (real terraform; tfaudit.terraform.localstate)."""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from conftest import require_terraform
from tfaudit.run.outofband import state_identity
from tfaudit.terraform.binary import Terraform, detect
from tfaudit.terraform.localstate import override_path, read_local_state, read_state_file

pytestmark = [pytest.mark.slow, pytest.mark.terraform]


def _tf(args: list[str], cwd: Path, env: dict[str, str]) -> bytes:
    res = subprocess.run([require_terraform(), *args], cwd=cwd, env=env, capture_output=True, timeout=300,
                         stdin=subprocess.DEVNULL)
    assert res.returncode == 0, res.stdout + res.stderr
    return res.stdout


def _terraform(d: Path, env: dict[str, str], *, chdir: bool = False) -> Terraform:
    return detect(None, env, str(d) if chdir else None)


def test_the_default_local_state_reads_as_state_pull_prints_it(
        tf_workdir: Callable[[str], Path], base_env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    d = tf_workdir("noop")
    monkeypatch.chdir(d)
    assert read_local_state(_terraform(d, base_env)) == _tf(["state", "pull"], d, base_env) == b""  # none yet
    _tf(["apply", "-auto-approve"], d, base_env)
    pulled = _tf(["state", "pull"], d, base_env)
    monkeypatch.chdir(d.parent)
    assert read_local_state(_terraform(d, base_env, chdir=True)) == pulled  # -chdir
    monkeypatch.chdir(d)
    assert read_local_state(_terraform(d, base_env)) == pulled
    # another workspace: its own file, until it has none
    _tf(["workspace", "new", "blue"], d, base_env)
    assert read_local_state(_terraform(d, base_env)) is None  # no state there yet: ask terraform
    _tf(["apply", "-auto-approve", "-var=gen=2"], d, base_env)
    assert read_local_state(_terraform(d, base_env)) == _tf(["state", "pull"], d, base_env) != pulled
    env = {**base_env, "TF_WORKSPACE": "default"}
    assert read_local_state(_terraform(d, env)) == pulled


def test_a_configured_local_backend_reads_its_path(
        tf_workdir: Callable[[str], Path], base_env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    d = tf_workdir("noop")
    (d / "backend.tf").write_text('terraform {\n  backend "local" {\n    path = "states/here.tfstate"\n  }\n}\n')
    _tf(["init", "-input=false"], d, base_env)
    _tf(["apply", "-auto-approve"], d, base_env)
    monkeypatch.chdir(d)
    tf = _terraform(d, base_env)
    assert read_local_state(tf) == _tf(["state", "pull"], d, base_env)
    assert state_identity(tf) == f"local:{d / 'states' / 'here.tfstate'}"


@pytest.mark.parametrize("change", ["other backend", "older terraform", "hand written", "tofu"])
def test_whenever_unsure_terraform_is_asked(
        tf_workdir: Callable[[str], Path], base_env: dict[str, str], monkeypatch: pytest.MonkeyPatch,
        change: str) -> None:
    d = tf_workdir("noop")
    _tf(["apply", "-auto-approve"], d, base_env)
    monkeypatch.chdir(d)
    tf = _terraform(d, base_env)
    state = d / "terraform.tfstate"
    if change == "other backend":  # declared, not initialised: `state pull` would refuse
        (d / "backend.tf").write_text('terraform {\n  backend "s3" {\n    bucket = "b"\n  }\n}\n')
    elif change == "older terraform":  # state pull re-encodes another version's file
        state.write_text(state.read_text().replace(f'"terraform_version": "{tf.version}"',
                                                   '"terraform_version": "1.5.7"', 1))
    elif change == "hand written":
        state.write_text(state.read_text().rstrip("\n"))
    else:
        tf = Terraform(tf.path, "tofu", tf.version, None, tf.env)  # its state may be encrypted at rest
    assert read_local_state(tf) is None


def test_a_state_flag_file_is_read_itself_with_the_local_backend_only(
        tf_workdir: Callable[[str], Path], base_env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    d = tf_workdir("noop")
    _tf(["apply", "-auto-approve", "-state=other.tfstate"], d, base_env)
    monkeypatch.chdir(d)
    tf = _terraform(d, base_env)
    other = d / "other.tfstate"
    assert override_path(tf, other) == other and state_identity(tf, other) == f"local:{other}"
    assert override_path(tf, d / "terraform.tfstate") is None  # the backend's own file reads as always
    assert read_state_file(tf, other) == other.read_bytes() + b"\n"  # as `state pull` would print it
    assert read_state_file(tf, d / "none.tfstate") == b""  # terraform starts from an empty state there
    older = d / "older.tfstate"  # no terraform command reads it: its bytes as they are
    older.write_text(other.read_text().replace(f'"terraform_version": "{tf.version}"', '"terraform_version": "1.5.7"'))
    assert read_state_file(tf, older) == older.read_bytes()
    # terraform ignores -state with another backend: so does tfaudit
    (d / "backend.tf").write_text('terraform {\n  backend "s3" {\n    bucket = "b"\n  }\n}\n')
    assert override_path(tf, other) is None
