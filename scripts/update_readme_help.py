#!/usr/bin/env python3
"""Refresh the `--help` excerpts in README.md from the real CLI (tests/test_readme.py checks them).

Each excerpt is a `<!-- help: tfaudit ... --help -->` marker followed by a text block.
Run with the project's venv: `.venv/bin/python scripts/update_readme_help.py`.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"
EXCERPT = re.compile(r"(<!-- help: (?P<cmd>[^>]+?) -->\n```text\n\$ (?P=cmd)\n)(?P<body>.*?)(\n```)", re.S)


def main() -> int:
    def fresh(m: re.Match[str]) -> str:
        args = m["cmd"].split()[1:]
        out = subprocess.run([sys.executable, "-m", "tfaudit", *args], capture_output=True, text=True, check=True,
                             env={**os.environ, "COLUMNS": "100"}).stdout.rstrip("\n")
        return m.group(1) + out + m.group(4)

    text = README.read_text()
    new = EXCERPT.sub(fresh, text)
    if new != text:
        README.write_text(new)
        print("README.md: help excerpts refreshed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
