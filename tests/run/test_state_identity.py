"""Out-of-band changes found by the state's identity, not the working directory (real terraform)."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from conftest import CliResult, read_ledger, require_terraform

pytestmark = [pytest.mark.slow, pytest.mark.terraform]


def test_two_checkouts_sharing_one_state_see_each_others_outside_changes(
        tf_workdir: Callable[[str], Path], keypair: tuple[Path, Path], run_tfaudit: Callable[..., CliResult],
        base_env: dict[str, str], tmp_path: Path) -> None:
    src = tf_workdir("shared-state")
    a, b = tmp_path / "checkouts" / "a", tmp_path / "elsewhere" / "b"
    for dest in (a, b):
        shutil.copytree(src, dest, symlinks=True)
    for dest in (a, b):  # backend "local" { path = "../shared/terraform.tfstate" }: one file for both
        (dest.parent / "shared").mkdir(exist_ok=True)
    (b.parent / "shared").rmdir()
    (b.parent / "shared").symlink_to(a.parent / "shared")
    ledger = tmp_path / "ledger.jsonl"
    env = {"TFAUDIT_SIGNING_KEY": str(keypair[0]), "TFAUDIT_LEDGER": str(ledger)}

    def tfaudit(where: Path, *args: str) -> CliResult:
        res = run_tfaudit(*args, cwd=where, env=env)
        assert res.returncode == 0, res.output
        return res

    tfaudit(a, "apply", "-auto-approve")
    # b applies through tfaudit too: the state a left, so nothing out of band
    second = tfaudit(b, "apply", "-auto-approve", "-var=label=second")
    assert "outside tfaudit" not in second.stderr
    # a plain terraform apply in b, outside tfaudit
    tf = subprocess.run([require_terraform(), "apply", "-auto-approve", "-var=label=third"], cwd=b, env=base_env,
                        capture_output=True, text=True, timeout=300)
    assert tf.returncode == 0, tf.stdout + tf.stderr
    # a sees it, though a never ran in b's directory
    seen = tfaudit(a, "plan", "-var=label=third")
    assert "state changed outside tfaudit: serial moved" in seen.stderr
    # and b, whose last recorded state is now a's out-of-band observation, sees nothing new
    again = tfaudit(b, "plan", "-var=label=third")
    assert "outside tfaudit" not in again.stderr

    recs = read_ledger(ledger)
    oob = [r for r in recs if r["type"] == "state.out_of_band"]
    assert len(oob) == 1 and oob[0]["run"]["working_dir"] == str(a)
    expected = oob[0]["detail"]["expected"]["record"]
    b_finish = [r for r in recs if r["type"] == "run.finished" and r["run"]["working_dir"] == str(b)][-1]
    assert expected["run_id"] == b_finish["run"]["id"]  # compared with b's run, across checkouts
    ids = {r["run"].get("state_id") for r in recs}
    assert ids == {"local:" + str((a.parent / "shared" / "terraform.tfstate").resolve())}
