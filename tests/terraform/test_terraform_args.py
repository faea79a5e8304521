"""Finding the binary and routing the user's arguments to the terraform step they belong to."""

from __future__ import annotations

from pathlib import Path

import pytest

from tfaudit.errors import TerraformNotFound
from tfaudit.terraform.args import (drift_conflict, extract_chdir, moved_to, own_option, parse_command_line,
                                    plan_out, positionals, split_args, state_flags)
from tfaudit.terraform.binary import find_binary


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




def test_one_table_of_value_flags_serves_every_command() -> None:
    # state mv: a flag's value is never taken for an address
    assert positionals(["-state", "x.tfstate", "-lock=false", "a.b", "c.d"]) == ["a.b", "c.d"]
    assert positionals(["-var-file", "v.tfvars", "-provider", "p", "aws_s3_bucket.b", "id-1"]) == ["aws_s3_bucket.b", "id-1"]
    assert plan_out(["-var", "out=x", "-out", "p.tfplan"]) == "p.tfplan"
    assert plan_out(["--out=q.tfplan"]) == "q.tfplan" and plan_out(["-var", "x=1"]) is None
    assert drift_conflict(["-var", "x=1", "--detailed-exitcode"]) == "--detailed-exitcode"
    assert drift_conflict(["-var", "-out=1"]) is None  # a value, not a flag
    assert own_option(["apply", "--ledger", "l.jsonl", "-var", "x=1"], "--ledger") == "l.jsonl"
    assert own_option(["plan", "--config=c.hcl"], "--config") == "c.hcl"


def test_global_options_come_out_before_the_command() -> None:
    line = parse_command_line(["-chdir=infra", "apply", "--log-format", "json", "-v", "--verbose"])
    assert (line.chdir, line.log_format, line.verbosity) == ("infra", "json", 1)
    assert line.args == ["apply", "-v"]


TAIL = (b"\x1b[0m\n\nSaved the plan to: /tmp/tfaudit-x/tfaudit.tfplan\n\nTo perform exactly these actions, "
        b'run the following command to apply:\n    terraform apply "/tmp/tfaudit-x/tfaudit.tfplan"\n')


@pytest.mark.parametrize("chunk", [1, 7, 64, 10_000])
def test_temporary_plan_file_is_never_shown(chunk: int) -> None:
    from tfaudit.ui.saved_plan import SavedPlanNote

    text = b"Plan: 1 to add, 0 to change, 0 to destroy.\n" + TAIL
    for as_note in (True, False):
        f = SavedPlanNote("terraform", replace_with_note=as_note)
        out = b"".join(f.feed(text[i:i + chunk]) for i in range(0, len(text), chunk)) + f.close()
        assert b"/tmp/tfaudit-x" not in out and b"Saved the plan" not in out
        assert out.startswith(b"Plan: 1 to add")
        assert (b"Note: You didn't use the -out option to save this plan, so Terraform can't" in out) is as_note


def test_prompts_without_newline_pass_at_once() -> None:
    from tfaudit.ui.saved_plan import SavedPlanNote

    f = SavedPlanNote("tofu", replace_with_note=True)
    assert f.feed(b"var.region\n  Enter a value: ") == b"var.region\n  Enter a value: "
    assert f.feed(b"Sav") == b""  # could begin the block: held until the line ends
    assert f.feed(b"ings account\n") == b"Savings account\n"
    assert f.feed(TAIL).endswith(b'if you run "tofu apply" now.\n')


RULE = "\x1b[0m\x1b[90m\n{}\x1b[0m\n".format("─" * 40).encode()


@pytest.mark.parametrize("chunk", [1, 5, 10_000])
def test_apply_drops_the_rule_before_the_block_but_keeps_other_rules(chunk: int) -> None:
    from tfaudit.ui.saved_plan import SavedPlanNote

    drift = b"Note: Objects have changed outside of Terraform\n" + RULE + b"\nTerraform used the providers\n"
    text = drift + b"Plan: 1 to add, 0 to change, 0 to destroy.\n" + RULE + TAIL
    f = SavedPlanNote("terraform", replace_with_note=False)
    out = b"".join(f.feed(text[i:i + chunk]) for i in range(0, len(text), chunk)) + f.close()
    assert out.count("─".encode() * 40) == 1  # the rule inside the plan stays; the one before the block goes
    assert out.startswith(drift) and b"Saved the plan" not in out
    planned = SavedPlanNote("terraform", replace_with_note=True)
    kept = planned.feed(RULE + TAIL) + planned.close()
    assert kept.startswith(RULE) and b"Note: You didn't use the -out option" in kept


def test_a_prompt_after_a_rule_is_never_held_back() -> None:
    from tfaudit.ui.saved_plan import SavedPlanNote

    f = SavedPlanNote("terraform", replace_with_note=False)
    shown = f.feed(RULE + b"\nvar.region\n  Enter a value: ")
    assert shown.endswith(b"  Enter a value: ") and "─".encode() in shown


@pytest.mark.parametrize(("argv", "handler"), [
    (["apply", "-auto-approve"], "tfaudit"), (["state", "mv", "a", "b"], "tfaudit"), (["verify", "l"], "tfaudit"),
    (["init"], "terraform"), (["state", "list"], "terraform"), (["state", "-state=x", "rm", "a"], "tfaudit"),
    (["apply", "-help"], "terraform"), (["apply", "--help"], "tfaudit"), (["state", "--help"], "tfaudit"),
    (["version"], "version"), (["-v"], "version"), (["-help"], "help"), (["--help"], "tfaudit"),
    (["verfy"], "tfaudit"), (["nonsense"], "terraform"), (["-chdir", "x", "plan"], "terraform"),
])
def test_route_sends_each_command_to_who_answers_it(argv: list[str], handler: str) -> None:
    from tfaudit.cli.app import _own_commands
    from tfaudit.terraform.args import route

    assert route(parse_command_line(argv), _own_commands()).handler == handler


def test_a_missing_chdir_is_terraforms_to_report(tmp_path: Path) -> None:
    from tfaudit.cli.app import _own_commands
    from tfaudit.terraform.args import route

    line = parse_command_line([f"-chdir={tmp_path / 'nope'}", "apply"])
    assert route(line, _own_commands()).handler == "terraform"


def test_every_command_of_tfaudits_is_known_to_the_router() -> None:
    import typer.main

    from tfaudit.cli.app import _own_commands, app

    from tfaudit.terraform.args import TERRAFORM_COMMANDS, RECORDED_COMMANDS

    own = set(typer.main.get_command(app).commands)  # type: ignore[attr-defined]
    assert own == _own_commands()
    assert own & TERRAFORM_COMMANDS <= RECORDED_COMMANDS  # cli/entry.py hands terraform's words over early


def test_tf_cli_args_in_terraforms_order_and_kept_from_tfaudits_own_steps() -> None:
    from tfaudit.terraform.args import env_args, terraform_env

    env = {"TF_CLI_ARGS": "-var=a=1 -lock=false", "TF_CLI_ARGS_apply": "-var='b=2 3'", "TF_CLI_ARGS_plan": "-x",
           "TF_CLI_ARGS_state_mv": "-dry-run", "PATH": "/bin"}
    assert env_args(["apply"], env) == ["-var=b=2 3", "-var=a=1", "-lock=false"]
    assert env_args(["state", "mv"], env) == ["-dry-run", "-var=a=1", "-lock=false"]
    assert terraform_env(env) == {"PATH": "/bin"}


def test_unknown_flags_and_the_probe_argv() -> None:
    from tfaudit.terraform.args import dangling_value_flag, probe_argv, unknown_flags

    assert unknown_flags("apply", ["-auto-approve", "-var", "x=1", "-nope", "plan.tfplan"]) == ["-nope"]
    assert unknown_flags("plan", ["-out=p", "-detailed-exitcode"]) == []
    assert unknown_flags("apply", ["-out=p"]) == ["-out=p"]  # plan's, not apply's
    assert probe_argv(["apply"], ["-nope", "plan.tfplan", "-var", "x=1"], "-probe") == \
        ["apply", "-nope", "-var", "x=1", "-probe", "plan.tfplan"]
    assert dangling_value_flag(["-auto-approve", "-var"]) and not dangling_value_flag(["-var", "x=1"])


@pytest.mark.parametrize(("command", "args", "files"), [
    ("apply", ["-auto-approve"], (None, None)),
    ("apply", ["-state=a.tfstate"], ("a.tfstate", "a.tfstate")),
    ("apply", ["-state", "a.tfstate", "--state-out", "b.tfstate", "-backup=c"], ("a.tfstate", "b.tfstate")),
    ("destroy", ["-state-out=b.tfstate"], (None, "b.tfstate")),  # reads the backend's own state
    ("apply", ["-state=a", "-state=b"], ("b", "b")),  # the last one counts, as in terraform
    ("apply", ["-state="], (None, None)),  # empty: terraform's default
    ("plan", ["-state=a", "-state-out=b"], ("a", "a")),  # plan writes no state
    ("drift", ["-state=a"], ("a", "a")),
    ("state mv", ["-state=a", "-state-out=b", "x", "y"], ("a", "a")),  # -state-out: where moved ones go
    ("taint", ["-state=a", "-state-out=b", "x"], ("a", "b")),
])
def test_state_flags_name_the_state_read_and_the_state_left(command: str, args: list[str],
                                                            files: tuple[str | None, str | None]) -> None:
    assert state_flags(command, args) == files


@pytest.mark.parametrize(("command", "args", "dest"), [
    ("state mv", ["-state=a", "-state-out=b", "x", "y"], "b"),
    ("state mv", ["--state-out", "b", "x", "y"], "b"),  # from the backend's own state into b
    ("state mv", ["-state=a", "x", "y"], None),
    ("state mv", ["-state-out=", "x", "y"], None),
    ("taint", ["-state=a", "-state-out=b", "x"], None),  # -state-out is the state it leaves, not a second
])
def test_moved_to_names_the_second_state_state_mv_writes(command: str, args: list[str], dest: str | None) -> None:
    assert moved_to(command, args) == dest
