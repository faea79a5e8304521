"""SavedPlanNote in front of `apply -auto-approve`: the plan's diagnostics are held back, the rest
("Changes to Outputs:") passes in place. The bytes are terraform 1.11.4's `plan -out=FILE` screen
(fixtures/outputs-before-apply with an undeclared variable in terraform.tfvars and v = "a")."""

from __future__ import annotations

import pytest

from tfaudit.ui.saved_plan import SavedPlanNote, shown_diagnostic

RULE = "─" * 78
UNDECLARED = ("The root module does not declare a variable named \"foo\" but a value was found\n"
              "in file \"terraform.tfvars\".\n")
PLAIN_PLAN = "Plan: 1 to add, 0 to change, 0 to destroy.\n\nChanges to Outputs:\n  + o = (known after apply)\n"
PLAIN_DIAGS = ("\nWarning: Value for undeclared variable\n\n" + UNDECLARED
               + "\nWarning: Check block assertion failed\n\n  on main.tf line 15, in check \"v_is_b\":\n"
               "\nv is not b\n")
PLAIN_TAIL = (f"\n{RULE}\n\nSaved the plan to: /tmp/tfaudit-x/tfaudit.tfplan\n\n"
              "To perform exactly these actions, run the following command to apply:\n"
              '    terraform apply "/tmp/tfaudit-x/tfaudit.tfplan"\n')

Y = "\x1b[33m│\x1b[0m \x1b[0m"
COLOUR_PLAN = ("\x1b[1mPlan:\x1b[0m 1 to add, 0 to change, 0 to destroy.\n\x1b[0m\nChanges to Outputs:\n"
               "  \x1b[32m+\x1b[0m\x1b[0m o = (known after apply)\n")
COLOUR_DIAGS = ("\x1b[33m╷\x1b[0m\x1b[0m\n"
                f"{Y}\x1b[1m\x1b[33mWarning: \x1b[0m\x1b[0m\x1b[1mValue for undeclared variable\x1b[0m\n{Y}\n"
                f"{Y}\x1b[0mThe root module does not declare a variable named \"foo\"\n"
                "\x1b[33m╵\x1b[0m\x1b[0m\n"
                "\x1b[33m╷\x1b[0m\x1b[0m\n"
                f"{Y}\x1b[1m\x1b[33mWarning: \x1b[0m\x1b[0m\x1b[1mCheck block assertion failed\x1b[0m\n{Y}\n"
                f"{Y}v is not b\n"
                "\x1b[33m╵\x1b[0m\x1b[0m\n")
COLOUR_TAIL = (f"\x1b[90m\n{RULE}\x1b[0m\n\nSaved the plan to: /tmp/tfaudit-x/tfaudit.tfplan\n\n"
               "To perform exactly these actions, run the following command to apply:\n"
               '    terraform apply "/tmp/tfaudit-x/tfaudit.tfplan"\n')


def _feed(note: SavedPlanNote, text: str, chunk: int) -> bytes:
    data = text.encode()
    return b"".join(note.feed(data[i:i + chunk]) for i in range(0, len(data), chunk)) + note.close()


@pytest.mark.parametrize("chunk", [1, 9, 100_000])
@pytest.mark.parametrize(("plan", "diags", "tail"), [(PLAIN_PLAN, PLAIN_DIAGS, PLAIN_TAIL),
                                                     (COLOUR_PLAN, COLOUR_DIAGS, COLOUR_TAIL)],
                         ids=["no-color", "colour"])
def test_outputs_pass_in_place_and_each_diagnostic_is_held(plan: str, diags: str, tail: str, chunk: int) -> None:
    note = SavedPlanNote("terraform", replace_with_note=False, hold_diagnostics=True)
    shown = _feed(note, plan + diags + tail, chunk)
    assert shown == plan.encode()  # the outputs where terraform shows them; no blank line or rule after
    held = note.held_diagnostics()
    assert b"".join(held) == diags.encode()
    assert [f"{(x := shown_diagnostic(d)).severity.title()}: {x.summary}" for d in held] == ["Warning: Value for undeclared variable",
                                                     "Warning: Check block assertion failed"]


@pytest.mark.parametrize(("plan", "tail"), [(PLAIN_PLAN, PLAIN_TAIL), (COLOUR_PLAN, COLOUR_TAIL)],
                         ids=["no-color", "colour"])
def test_without_diagnostics_nothing_is_held(plan: str, tail: str) -> None:
    for hold in (True, False):  # nor does the prompt's screen keep the rule's blank line
        note = SavedPlanNote("terraform", replace_with_note=False, hold_diagnostics=hold)
        assert _feed(note, plan + tail, 5) == plan.encode() and note.held_diagnostics() == []


def test_with_a_prompt_to_come_diagnostics_stay_in_place() -> None:
    note = SavedPlanNote("terraform", replace_with_note=False)
    assert _feed(note, PLAIN_PLAN + PLAIN_DIAGS + PLAIN_TAIL, 7) == (PLAIN_PLAN + PLAIN_DIAGS).encode()
    assert note.diagnosed and note.held_diagnostics() == []


def test_a_failed_plan_shows_its_warnings_in_place() -> None:
    errored = PLAIN_PLAN.replace("Plan:", "Terraform planned the following actions, but then encountered a "
                                          "problem:\n\nPlan:")
    note = SavedPlanNote("terraform", replace_with_note=False, hold_diagnostics=True)
    assert _feed(note, errored + PLAIN_DIAGS, 3) == (errored + PLAIN_DIAGS).encode()
    assert note.held_diagnostics() == []


def test_a_reset_left_open_by_the_plan_line_stays_in_place() -> None:
    plan = "\x1b[1mPlan:\x1b[0m 1 to add, 0 to change, 0 to destroy.\n"
    note = SavedPlanNote("terraform", replace_with_note=False, hold_diagnostics=True)
    shown = _feed(note, plan + "\x1b[0m" + COLOUR_DIAGS + COLOUR_TAIL, 4)
    assert shown == (plan + "\x1b[0m").encode() and b"".join(note.held_diagnostics()) == COLOUR_DIAGS.encode()


SCOPED = ("\x1b[33m╷\x1b[0m\x1b[0m\n"
          f"{Y}\x1b[1m\x1b[33mWarning: \x1b[0m\x1b[0m\x1b[1mUnable to find remote state\x1b[0m\n{Y}\n"
          f"{Y}\x1b[0m  with data.terraform_remote_state.gone,\n"
          f"{Y}  on main.tf line 11, in check \"remote\":\n"
          f"{Y}  11:   data \"terraform_remote_state\" \"gone\" \x1b[4m{{\x1b[0m\x1b[0m\n{Y}\n"
          f"{Y}No stored state was found for the given workspace in the given backend.\n"
          "\x1b[33m╵\x1b[0m\x1b[0m\n")


def test_a_held_diagnostic_is_read_back_as_terraform_reports_it() -> None:
    """What tells a check block's results apart: the snippet header, with colour or without."""
    for text in (SCOPED, _ansi_free(SCOPED)):
        diag = shown_diagnostic(text.encode())
        assert (diag.severity, diag.summary, diag.address, diag.filename, diag.line, diag.context) == (
            "warning", "Unable to find remote state", "data.terraform_remote_state.gone", "main.tf", 11,
            'check "remote"')
        assert diag.checked_again
    undeclared, check = SavedPlanNote.held_diagnostics(_held(PLAIN_DIAGS))
    assert not shown_diagnostic(undeclared).checked_again and shown_diagnostic(undeclared).context is None
    assert shown_diagnostic(check).checked_again and shown_diagnostic(check).address is None


def _ansi_free(text: str) -> str:
    import re

    lines = re.sub(r"\x1b\[[0-9;]*m", "", text).splitlines()
    return "\n" + "\n".join(line[2:] if line.startswith("│ ") else "" if line == "│" else line
                             for line in lines if line not in ("╷", "╵")) + "\n"


def _held(diags: str) -> SavedPlanNote:
    note = SavedPlanNote("terraform", replace_with_note=False, hold_diagnostics=True)
    _feed(note, PLAIN_PLAN + diags + PLAIN_TAIL, 11)
    return note
