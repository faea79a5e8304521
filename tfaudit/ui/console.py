"""The console: where a recorded run speaks to the user (stdout, stderr, the approval prompt)."""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TextIO


@dataclass
class Console:
    """Where the user sees things. Swappable in tests; defaults to the real terminal."""

    out: TextIO = field(default_factory=lambda: sys.stdout)
    err: TextIO = field(default_factory=lambda: sys.stderr)
    read_line: Callable[[], str] = field(default=lambda: sys.stdin.readline())

    def say(self, text: str) -> None:
        self.out.write(text + "\n")
        self.out.flush()

    def warn(self, text: str) -> None:
        self.err.write(text + "\n")
        self.err.flush()

    def confirm(self, destroy: bool) -> bool:
        if destroy:
            q = ("\nDo you really want to destroy all resources?\n"
                 "  Terraform will destroy all your managed infrastructure, as shown above.\n"
                 "  There is no undo. Only 'yes' will be accepted to confirm.\n\n  Enter a value: ")
        else:
            q = ("\nDo you want to perform these actions?\n"
                 "  Terraform will perform the actions described above.\n"
                 "  Only 'yes' will be accepted to approve.\n\n  Enter a value: ")
        self.out.write(q)
        self.out.flush()
        try:
            answer = self.read_line()
        except (EOFError, OSError):
            answer = ""
        self.out.write("\n")
        return answer.strip() == "yes"
