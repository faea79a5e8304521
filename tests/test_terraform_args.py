"""Finding the binary and routing the user's arguments to the terraform step they belong to."""

from __future__ import annotations

from pathlib import Path

import pytest

from tfaudit.errors import TerraformNotFound
from tfaudit.terraform import extract_chdir, find_binary, split_args


def _exe(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("#!/bin/sh\nexit 0\n")
    path.chmod(0o755)
    return path


def test_binary_search_order(tmp_path: Path) -> None:
    both = tmp_path / "both"
    tf, tofu = _exe(both / "terraform"), _exe(both / "tofu")
    only_tofu = tmp_path / "only-tofu"
    _exe(only_tofu / "tofu")
    custom = _exe(tmp_path / "custom" / "my-terraform")
    env = {"PATH": str(both)}
    assert find_binary(None, env) == (str(tf), "terraform")  # terraform before tofu
    assert find_binary(None, {"PATH": str(only_tofu)}) == (str(only_tofu / "tofu"), "tofu")
    assert find_binary(None, {**env, "TFAUDIT_TF_PATH": str(tofu)}) == (str(tofu), "tofu")
    assert find_binary(str(custom), {**env, "TFAUDIT_TF_PATH": str(tofu)})[0] == str(custom)  # --tf-path wins
    with pytest.raises(TerraformNotFound, match="--tf-path points at"):
        find_binary(str(tmp_path / "nope"), env)
    with pytest.raises(TerraformNotFound, match="neither terraform nor tofu"):
        find_binary(None, {"PATH": str(tmp_path / "empty")})


def test_apply_arguments_go_to_the_step_they_belong_to() -> None:
    s = split_args(["-auto-approve", "-var", "gen=2", "-var-file=prod.tfvars", "-target=a.b", "-replace", "c.d",
                    "-refresh=false", "-parallelism=3", "-lock=false", "-lock-timeout", "30s", "-backup=b.tfstate",
                    "-no-color", "-json"])
    assert s.auto_approve and s.json and s.no_color
    assert s.plan == ["-var", "gen=2", "-var-file=prod.tfvars", "-target=a.b", "-replace", "c.d", "-refresh=false",
                      "-parallelism=3", "-lock=false", "-lock-timeout", "30s", "-no-color"]
    assert s.apply == ["-parallelism=3", "-lock=false", "-lock-timeout", "30s", "-backup=b.tfstate", "-no-color"]
    assert s.positional == []


def test_values_that_look_like_positionals_stay_with_their_flag() -> None:
    s = split_args(["-var", "x=plan.tfplan", "saved.tfplan"])
    assert s.plan == ["-var", "x=plan.tfplan"] and s.positional == ["saved.tfplan"]
    assert split_args(["-auto-approve=false"]).auto_approve is False
    # an unknown flag goes to the plan step, where terraform reports it in its own words
    assert split_args(["-no-such-flag"]).plan == ["-no-such-flag"]


@pytest.mark.parametrize(("args", "chdir", "rest"), [
    (["-chdir=infra", "-auto-approve"], "infra", ["-auto-approve"]),
    (["-auto-approve", "-chdir", "infra"], "infra", ["-auto-approve"]),
    (["-auto-approve"], None, ["-auto-approve"]),
])
def test_chdir_is_taken_from_anywhere(args: list[str], chdir: str | None, rest: list[str]) -> None:
    assert extract_chdir(args) == (chdir, rest)

