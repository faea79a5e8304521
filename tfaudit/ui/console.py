"""Where the user sees things: terraform's approval prompt, tfaudit's warnings and its one summary line."""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

from tfaudit.ui.stream import Colorize, approval_prompt, columns, diagnostic_text


@dataclass
class Console:
    """Where the user sees things. Swappable in tests; defaults to the real terminal."""

    out: TextIO = field(default_factory=lambda: sys.stdout)
    err: TextIO = field(default_factory=lambda: sys.stderr)
    read_line: Callable[[], str] = field(default=lambda: sys.stdin.readline())
    quiet: bool = False  # --quiet: no summary line of tfaudit's own at the end
    notes: list[str] = field(default_factory=list)  # remarks folded into that line

    def say(self, text: str) -> None:
        self.out.write(text + "\n")
        self.out.flush()

    def warn(self, text: str) -> None:
        self.err.write(text + "\n")
        self.err.flush()

    def note(self, text: str) -> None:
        self.notes.append(text)

    def summary(self, recorded: str, ledger: Path | str) -> None:
        """tfaudit's one line of its own after terraform's screen (stderr): what it recorded, where
        (a file ledger's path, or a shared store's URL)."""
        if self.quiet:
            return
        try:
            where = str(ledger.relative_to(Path.cwd())) if isinstance(ledger, Path) else ledger
        except ValueError:
            where = str(ledger)
        self.warn("; ".join([f"tfaudit: recorded {recorded} in {where}", *self.notes]))

    def confirm(self, destroy: bool, color: bool = True) -> bool | None:
        """terraform's approval prompt, word for word and colour for colour: True for 'yes', False for
        another answer, None when stdin ended first (terraform's error for that is shown)."""
        q = approval_prompt(destroy, Colorize(color))
        self.out.write(q)
        self.out.flush()
        try:
            answer = self.read_line()
        except (EOFError, OSError):
            answer = ""
        if not answer:
            diag = {"severity": "error", "summary": "error asking for approval: EOF", "detail": ""}
            self.err.write(diagnostic_text(diag, Colorize(color), columns(self.err)))
            self.err.flush()
            return None
        self.out.write("\n")
        return answer.strip() == "yes"
