"""The "Outputs:" block tfaudit draws from `terraform apply -json` is terraform's own, byte for byte.

fixtures/outputs has outputs of every shape (non-ASCII, escapes, heredocs, 512-bit numbers, typed
nulls, lists, sets, maps, objects, sensitive values). One copy is applied by `terraform apply`, an
identical one by `tfaudit apply`; everything from "Apply complete!" to the end of stdout must match.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from conftest import require_terraform

pytestmark = [pytest.mark.slow, pytest.mark.terraform]


@pytest.fixture
def pair(tf_workdir: Callable[[str], Path], base_env: dict[str, str], keypair: tuple[Path, Path],
         tmp_path: Path) -> dict[str, Any]:
    env = {**base_env, "TFAUDIT_SIGNING_KEY": str(keypair[0])}
    env.pop("TF_IN_AUTOMATION", None)  # the screen a person sees
    dirs = {side: tf_workdir("outputs").rename(tmp_path / side) for side in ("terraform", "tfaudit")}
    return {"env": env, **dirs}


def _ending(pair: dict[str, Any], side: str, args: list[str]) -> str:
    """stdout from "Apply complete!" on: the summary and the Outputs block."""
    argv = [require_terraform()] if side == "terraform" else [sys.executable, "-m", "tfaudit"]
    res = subprocess.run([*argv, "apply", "-auto-approve", *args], cwd=pair[side], env=pair["env"],
                         capture_output=True, timeout=300, stdin=subprocess.DEVNULL)
    assert res.returncode == 0, res.stderr.decode()
    out = res.stdout.decode("utf-8")
    return out[out.index("Apply complete!"):]


def _same_ending(pair: dict[str, Any], args: list[str]) -> str:
    theirs, ours = _ending(pair, "terraform", args), _ending(pair, "tfaudit", args)
    assert ours == theirs
    return theirs


def test_outputs_block_is_terraforms_byte_for_byte(pair: dict[str, Any]) -> None:
    shown = _same_ending(pair, [])  # in colour, through a pipe
    assert "\x1b[32m\nOutputs:\n\n" in shown
    assert 's_nonascii = "café ñ 日本 😀"\n' in shown  # not escaped
    assert "f_third = 0." + "3" * 154 + "5\n" in shown  # every digit terraform keeps
    assert '  "key with space" = "q"\n  "longer_key" = "v"\n' in shown  # keys not aligned
    assert "empty_map = tomap({})\n" in shown and "secret = <sensitive>\n" in shown
    # applied again, nothing changes: terraform still applies (the state holds fractions)
    _same_ending(pair, ["-no-color"])


def test_outputs_block_of_an_apply_tfaudit_skips_is_terraforms(pair: dict[str, Any]) -> None:
    """Without fractions an apply that changes nothing is shown by tfaudit itself (tfaudit.run.noop)."""
    for side in ("terraform", "tfaudit"):
        (pair[side] / "fractions.tf").unlink()
    _same_ending(pair, ["-no-color"])
    state = pair["tfaudit"] / "terraform.tfstate"
    mtime = state.stat().st_mtime_ns
    shown = _same_ending(pair, ["-no-color"])
    assert state.stat().st_mtime_ns == mtime  # terraform never ran the apply
    assert "n_e100 = 1" + "0" * 100 + "\n" in shown and "<<-EOT\n" in shown
