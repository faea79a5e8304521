#!/usr/bin/env python3
"""Write requirements.lock: tfaudit's run-time dependencies, pinned to the versions in .venv.

The GitHub action and the GitLab template install tfaudit with `pip install -r requirements.lock`,
and scripts/_venv.sh installs the development venv under the same pins (`-c requirements.lock`),
so what CI tests is what users get. After changing dependencies in pyproject.toml:

    rm -rf .venv && sed -i '/==/d' requirements.lock && ./scripts/test.sh --co -q && .venv/bin/python scripts/lock.py
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from offline_pip import closure  # noqa: E402 - the run-time closure of an installed distribution

HEADER = """\
# tfaudit's run-time dependencies, pinned (written by scripts/lock.py from a venv built with them).
# The GitHub action and the GitLab template install with: pip install -r requirements.lock <tfaudit>
"""


def pins() -> list[str]:
    dists = closure("tfaudit")
    return sorted((f"{d.metadata['Name']}=={d.version}" for d in dists), key=str.lower)


def main() -> int:
    (ROOT / "requirements.lock").write_text(HEADER + "\n".join(pins()) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
