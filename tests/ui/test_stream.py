"""The apply -json events rendered as terraform 1.11's human view prints them.

The expected bytes are terraform's own output for the same events (terraform apply on
fixtures/dropin, through a pipe, so 78 columns), copied verbatim.
"""

from __future__ import annotations

import io

from tfaudit.ui.stream import Colorize, StreamRenderer, approval_prompt, diagnostic_text, wrap

BOOM = {"severity": "error", "summary": "local-exec provisioner error",
        "detail": "Error running command 'echo hello from boom; exit 3': exit status 3. Output: hello from boom\n",
        "address": "terraform_data.boom[0]",
        "range": {"filename": "main.tf", "start": {"line": 25, "column": 28, "byte": 418},
                  "end": {"line": 25, "column": 29, "byte": 419}},
        "snippet": {"context": 'resource "terraform_data" "boom"', "code": '  provisioner "local-exec" {',
                    "start_line": 25, "highlight_start_offset": 27, "highlight_end_offset": 28, "values": []}}

BOOM_BOXED = (
    "\x1b[31m╷\x1b[0m\x1b[0m\n"
    "\x1b[31m│\x1b[0m \x1b[0m\x1b[1m\x1b[31mError: \x1b[0m\x1b[0m\x1b[1mlocal-exec provisioner error\x1b[0m\n"
    "\x1b[31m│\x1b[0m \x1b[0m\n"
    "\x1b[31m│\x1b[0m \x1b[0m\x1b[0m  with terraform_data.boom[0],\n"
    '\x1b[31m│\x1b[0m \x1b[0m  on main.tf line 25, in resource "terraform_data" "boom":\n'
    '\x1b[31m│\x1b[0m \x1b[0m  25:   provisioner "local-exec" \x1b[4m{\x1b[0m\x1b[0m\n'
    "\x1b[31m│\x1b[0m \x1b[0m\n"
    "\x1b[31m│\x1b[0m \x1b[0mError running command 'echo hello from boom; exit 3': exit status 3.\n"
    "\x1b[31m│\x1b[0m \x1b[0mOutput: hello from boom\n"
    "\x1b[31m│\x1b[0m \x1b[0m\n"
    "\x1b[31m╵\x1b[0m\x1b[0m\n")

BOOM_PLAIN = (
    "\nError: local-exec provisioner error\n\n"
    "  with terraform_data.boom[0],\n"
    '  on main.tf line 25, in resource "terraform_data" "boom":\n'
    '  25:   provisioner "local-exec" {\n\n'
    "Error running command 'echo hello from boom; exit 3': exit status 3. Output:\n"
    "hello from boom\n\n")


def test_an_error_is_boxed_with_every_line_terraform_prints() -> None:
    assert diagnostic_text(BOOM, Colorize(True), 78) == BOOM_BOXED


def test_without_colour_an_error_is_terraforms_plain_form() -> None:
    assert diagnostic_text(BOOM, Colorize(False), 78) == BOOM_PLAIN


def test_words_wrap_like_go_wordwrap() -> None:
    text = ("You are creating a plan with the -target option, which means that the result of this plan may "
            "not represent all of the changes requested by the current configuration.")
    assert wrap(text, 75).split("\n") == [
        "You are creating a plan with the -target option, which means that the",
        "result of this plan may not represent all of the changes requested by the",
        "current configuration."]
    assert wrap("a\n\nb", 10) == "a\n\nb" and wrap("x" * 20, 5) == "x" * 20  # a long word stays whole


def _render(events: list[dict[str, object]], color: bool) -> tuple[str, str]:
    out, err = io.StringIO(), io.StringIO()
    r = StreamRenderer(out, err, color=color)
    for e in events:
        r.render(e)
    return out.getvalue(), err.getvalue()


def _hook(kind: str, addr: str, **hook: object) -> dict[str, object]:
    return {"type": kind, "hook": {"resource": {"addr": addr}, **hook}}


def test_progress_lines_are_terraforms_bold_hook_lines_and_nothing_more() -> None:
    events = [
        _hook("apply_start", "terraform_data.upd", action="update", id_key="id", id_value="f7"),
        _hook("apply_complete", "terraform_data.upd", action="update", id_key="id", id_value="f7", elapsed_seconds=0),
        _hook("apply_start", "terraform_data.boom[0]", action="create"),
        _hook("provision_start", "terraform_data.boom[0]", provisioner="local-exec"),
        _hook("provision_progress", "terraform_data.boom[0]", provisioner="local-exec", output="hello from boom"),
        _hook("provision_errored", "terraform_data.boom[0]", provisioner="local-exec"),
        _hook("apply_errored", "terraform_data.boom[0]", action="create", elapsed_seconds=0),
        _hook("apply_start", "terraform_data.gone[0]", action="delete", id_key="id", id_value="03"),
        _hook("apply_progress", "terraform_data.gone[0]", action="delete", elapsed_seconds=70),
        _hook("apply_complete", "terraform_data.gone[0]", action="delete", elapsed_seconds=71),
        {"type": "change_summary", "changes": {"add": 1, "change": 1, "remove": 1, "operation": "apply"}},
    ]
    out, err = _render(events, color=True)
    assert out.split("\n") == [
        "\x1b[0m\x1b[1mterraform_data.upd: Modifying... [id=f7]\x1b[0m\x1b[0m",
        "\x1b[0m\x1b[1mterraform_data.upd: Modifications complete after 0s [id=f7]\x1b[0m",
        "\x1b[0m\x1b[1mterraform_data.boom[0]: Creating...\x1b[0m\x1b[0m",
        "\x1b[0m\x1b[1mterraform_data.boom[0]: Provisioning with 'local-exec'...\x1b[0m\x1b[0m",
        "\x1b[0m\x1b[1mterraform_data.boom[0] (local-exec):\x1b[0m \x1b[0mhello from boom",
        "\x1b[0m\x1b[1mterraform_data.gone[0]: Destroying... [id=03]\x1b[0m\x1b[0m",
        "\x1b[0m\x1b[1mterraform_data.gone[0]: Still destroying... [id=03, 01m10s elapsed]\x1b[0m\x1b[0m",
        "\x1b[0m\x1b[1mterraform_data.gone[0]: Destruction complete after 1m11s\x1b[0m",
        "\x1b[0m\x1b[1m\x1b[32m",
        "Apply complete! Resources: 1 added, 1 changed, 1 destroyed.",
        "\x1b[0m"]
    assert err == ""
    plain, _ = _render(events, color=False)
    assert "terraform_data.boom[0] (local-exec): hello from boom\n" in plain and "\x1b" not in plain
    assert "Provisioning errored" not in plain and "Creation errored" not in plain


def test_the_approval_prompt_is_terraforms() -> None:
    assert approval_prompt(False, Colorize(True)) == (
        "\x1b[0m\x1b[1m\nDo you want to perform these actions?\x1b[0m\n"
        "  Terraform will perform the actions described above.\n"
        "  Only 'yes' will be accepted to approve.\n\n  \x1b[1mEnter a value:\x1b[0m \x1b[0m")
    assert approval_prompt(True, Colorize(False)).startswith("\nDo you really want to destroy all resources?\n")
