"""The README's promises, checked: its --help excerpts match the real output."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"
EXCERPT = re.compile(r"<!-- help: (?P<cmd>[^>]+?) -->\n```text\n\$ (?P=cmd)\n(?P<body>.*?)\n```", re.S)


def _excerpts() -> list[tuple[str, str]]:
    return [(m["cmd"], m["body"]) for m in EXCERPT.finditer(README.read_text())]


def test_readme_has_help_excerpts() -> None:
    assert {cmd for cmd, _ in _excerpts()} >= {"tfaudit --help", "tfaudit apply --help", "tfaudit verify --help"}


@pytest.mark.parametrize(("cmd", "body"), _excerpts(), ids=[c for c, _ in _excerpts()])
def test_help_excerpt_matches_real_output(cmd: str, body: str) -> None:
    args = cmd.split()[1:]
    res = subprocess.run([sys.executable, "-m", "tfaudit", *args], capture_output=True, text=True,
                         env={**os.environ, "COLUMNS": "100"}, check=False)
    assert res.returncode == 0, res.stderr
    assert res.stdout.rstrip("\n") == body, f"README excerpt of '{cmd}' is stale: run scripts/update_readme_help.py"


def test_every_command_is_mentioned_in_the_readme() -> None:
    res = subprocess.run([sys.executable, "-m", "tfaudit", "--help"], capture_output=True, text=True,
                         env={**os.environ, "COLUMNS": "100"}, check=False)
    commands = re.findall(r"^  ([a-z][a-z-]+)\s", res.stdout.split("Commands:", 1)[1], re.M)
    text = README.read_text()
    missing = [c for c in commands if f"tfaudit {c}" not in text]
    assert not missing, f"commands without any example in the README: {missing}"
