"""`terraform version` is asked once per binary, except through version managers' shims."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from conftest import require_terraform
from tfaudit.terraform import binary

pytestmark = [pytest.mark.slow, pytest.mark.terraform]


def _counting(monkeypatch: pytest.MonkeyPatch) -> list[list[str]]:
    calls: list[list[str]] = []
    real = binary._proc.run

    def run(argv: list[str], **kw: Any) -> Any:
        calls.append(list(argv))
        return real(argv, **kw)

    monkeypatch.setattr(binary._proc, "run", run)
    return calls


def test_the_version_of_a_binary_is_remembered(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    tf = require_terraform()
    env = {**os.environ, "XDG_CACHE_HOME": str(tmp_path / "cache")}
    calls = _counting(monkeypatch)
    first = binary.tool_version(tf, env)
    assert first is not None and first[0].isdigit()
    assert binary.tool_version(tf, env) == first
    assert len(calls) == 1  # the second answer came from the cache
    cached = json.loads((tmp_path / "cache" / "tfaudit" / "tool-versions.json").read_text())
    assert list(cached.values()) == [first]


def test_a_version_manager_shim_is_asked_every_time(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    tf = require_terraform()
    shim = tmp_path / "shims" / "terraform"
    shim.parent.mkdir()
    shim.write_text(f'#!/bin/sh\nexec "{tf}" "$@"\n')  # as tfenv and asdf install them
    shim.chmod(0o755)
    env = {**os.environ, "XDG_CACHE_HOME": str(tmp_path / "cache")}
    calls = _counting(monkeypatch)
    assert binary.tool_version(str(shim), env) == binary.tool_version(str(shim), env) is not None
    assert len(calls) == 2
    assert not (tmp_path / "cache" / "tfaudit" / "tool-versions.json").exists()
