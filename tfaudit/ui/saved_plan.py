"""terraform's "Saved the plan to: FILE" block, rewritten when FILE is tfaudit's temporary plan."""

from __future__ import annotations

import re

from tfaudit.parse.events import Diagnostic

_ANSI = re.compile(rb"\x1b\[[0-9;]*m")
_RULE = "─".encode()
_LEADING_ANSI = re.compile(rb"(?:\x1b\[0m)+(?=\x1b\[3[13]m)")  # a reset carried over from the line before a box
# where a diagnostic begins: the top of its box, or without colour its first line
_BOX = "╷".encode()
_DIAGNOSTIC = (_BOX, b"Warning: ", b"Error: ")


class SavedPlanNote:
    """Rewrites terraform's "Saved the plan to: FILE ... terraform apply "FILE"" block when FILE is
    tfaudit's temporary plan, which is deleted and must not be applied by hand.

    In front of tfaudit's own approval prompt (apply, destroy) the block and the horizontal
    rule before it are dropped, as `terraform apply` shows neither; after `tfaudit plan` the
    block becomes terraform's own note for a plan run without -out. Output passes through as
    it arrives; only a rule, or a partial line that could begin the block, is held back until
    what follows shows whether it belongs to the block. With hold_diagnostics (apply
    -auto-approve: no prompt between plan and apply) the plan's warning boxes are kept back
    instead, for the caller to show with the apply's, as terraform does; the rest of the
    plan ("Changes to Outputs:") still passes in place.
    """

    _START = b"Saved the plan to: "
    _ERRORED = b"Terraform planned the following actions, but then encountered a problem"
    _MAX_DROPPED = 4  # the block's own lines: a changed format never swallows more than this

    def __init__(self, tool: str, *, replace_with_note: bool, hold_diagnostics: bool = False) -> None:
        name = "OpenTofu" if tool == "tofu" else "Terraform"
        self.replacement = (
            f"Note: You didn't use the -out option to save this plan, so {name} can't\n"
            f'guarantee to take exactly these actions if you run "{tool} apply" now.\n'.encode()
            if replace_with_note else b""
        )
        self.drop_rule = not replace_with_note  # `terraform apply` shows no rule before its prompt
        self.buf = b""
        self.held: list[bytes] = []  # a horizontal rule (and blank lines) that may precede the block
        self.dropping = 0  # lines still to drop; 0 when not inside the block
        # `terraform apply -auto-approve` shows the plan's warnings at the end, with the apply's own:
        # the diagnostics after the "Plan:" line (and its "Changes to Outputs:") are kept back for the
        # caller to show then (held_diagnostics)
        self.hold_diagnostics = hold_diagnostics
        self.after_plan_line = False
        self.diagnostics: list[bytes] = []
        self.diagnosed = False  # a warning or an error was shown (or held)
        self.summaries: set[str] = set()  # what each of them said
        self.shown = b""  # the start of the current line, shown before its end arrived (a prompt, say)

    def feed(self, data: bytes) -> bytes:
        self.buf += data
        out: list[bytes] = []
        while (nl := self.buf.find(b"\n")) >= 0:
            line, self.buf = self.buf[: nl + 1], self.buf[nl + 1:]
            out.append(self._line(line))
        maybe_rule = self.drop_rule and self.buf.startswith((b"\x1b", _RULE[: len(self.buf)]))
        planned = self.hold_diagnostics and self.after_plan_line  # no prompt comes after the plan
        if (self.buf and not self.dropping and not maybe_rule and not planned
                and not self._START.startswith(self.buf[: len(self._START)])):
            # not the block (a prompt, say): show it, and any rule held back, now
            out.append(b"".join(self.held) + self.buf)
            self.shown += self.buf
            self.held, self.buf = [], b""
        return b"".join(out)

    def _line(self, line: bytes) -> bytes:
        if self.dropping:
            self.dropping -= 1
            if line.startswith(b"    ") and b' apply "' in line:
                self.dropping = 0
            return b""
        shown, self.shown = self.shown, b""
        visible = _ANSI.sub(b"", shown + line).strip()
        if (head := visible.lstrip("│ ".encode())).startswith((b"Warning:", b"Error:")):
            self.diagnosed = True
            self.summaries.add(head.partition(b":")[2].strip().decode("utf-8", "replace"))
        if shown:  # the line's start is on the screen already: the rest follows it
            self._plan_line(visible)
            return line
        rule = bool(visible) and not visible.strip(_RULE)
        colour_only = not visible and bool(line.strip())  # terraform opens its rule with a colour line
        # without colour the rule, and a diagnostic, open with a blank line: wait for what follows it
        blank = not visible and self.after_plan_line and not self.diagnostics
        if (self.drop_rule and (rule or (not visible and (colour_only or self.held or blank)))) or (
                blank and self.hold_diagnostics):
            self.held.append(line)  # a rule, or what surrounds one: wait for what follows
            return b""
        held, self.held = b"".join(self.held), []
        if line.startswith(self._START):
            self.dropping = self._MAX_DROPPED
            if self.diagnostics and self.diagnostics[-1] == b"\n":
                self.diagnostics.pop()  # without colour, the blank line before the rule belongs to the rule
            if self.drop_rule:
                # the rule goes; what the line before it left open (a reset) stays, as terraform apply shows it
                return held.split(b"\x1b[90m", 1)[0] if b"\x1b[90m" in held else b"".join(_ANSI.findall(held))
            return b"".join(_ANSI.findall(held)) + self.replacement
        if self.hold_diagnostics and self.after_plan_line and (self.diagnostics or visible.startswith(_DIAGNOSTIC)):
            carried = _LEADING_ANSI.match(held + line)
            lead = carried.group(0) if carried and not self.diagnostics else b""
            self.diagnostics.append((held + line)[len(lead):])
            return lead
        self._plan_line(visible)
        return held + line

    def _plan_line(self, visible: bytes) -> None:
        if visible.startswith((b"Plan: ", b"No changes.")):
            self.after_plan_line = True
        elif visible.startswith(self._ERRORED):
            self.hold_diagnostics = False  # no apply follows: terraform shows the plan's warnings with its errors

    def held_diagnostics(self) -> list[bytes]:
        """The diagnostics kept back, one entry each (a box with colour; without, a blank line and
        a "Warning:" or "Error:" line open one)."""
        entries: list[bytes] = []
        visible = [_ANSI.sub(b"", line).strip() for line in self.diagnostics]
        for i, line in enumerate(self.diagnostics):
            follows = visible[i + 1] if i + 1 < len(visible) else b""
            if not entries or visible[i].startswith(_BOX) or (not visible[i] and follows.startswith(_DIAGNOSTIC[1:])):
                entries.append(b"")
            entries[-1] += line
        return entries

    def close(self) -> bytes:
        rest, self.buf = b"".join(self.held) + self.buf, b""
        self.held = []
        return b"" if self.dropping else rest


_WITH = re.compile(r"with (.+),")
_ON = re.compile(r"on (.+) line (\d+)(?:, in (.+))?:")


def shown_diagnostic(held: bytes) -> Diagnostic:
    """A held diagnostic as terraform's -json would give it, read back from its screen form: the
    severity and summary, and from its snippet header ("with ADDR," and "on FILE line N, in CONTEXT:")
    the address and the block it is in."""
    lines = [line.strip("╷│╵ ") for line in _ANSI.sub(b"", held).decode("utf-8", "replace").splitlines()]
    lines = [line for line in lines if line]
    head = lines[0] if lines else ""
    severity, _, summary = head.partition(": ")
    address = filename = context = None
    number = None
    for line in lines[1:3]:  # the header follows the summary; the detail comes after the code
        if m := _WITH.fullmatch(line):
            address = m.group(1)
        elif m := _ON.fullmatch(line):
            filename, number, context = m.group(1), int(m.group(2)), m.group(3)
            break
    return Diagnostic(severity=severity.lower(), summary=summary, detail="", address=address, filename=filename,
                      line=number, context=context)

