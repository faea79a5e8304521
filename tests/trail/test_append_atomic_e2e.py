"""A full disk during the closing append of a real `tfaudit apply` (issue 10, case 4): the ledger is
exactly as it was before the batch, exit 4 with one line, and the next apply works once space is back.

The "full disk" is a file-size limit (RLIMIT_FSIZE, SIGXFSZ ignored) set just above what the ledger
needs for the run's first record, so terraform's own files (state, plan: a few KB) stay well under it
and only the ledger's closing batch does not fit."""

from __future__ import annotations

import json
import resource
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

pytestmark = [pytest.mark.slow, pytest.mark.terraform]


def _limited(limit: int) -> Callable[[], None]:
    def pre() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
    return pre


def test_full_disk_during_the_closing_append_leaves_the_ledger_as_it_was(
        tf_workdir: Callable[[str], Path], base_env: dict[str, str], keypair: tuple[Path, Path]) -> None:
    work = tf_workdir("quickstart")
    ledger = work / ".tfaudit" / "ledger.jsonl"
    env = {**base_env, "TFAUDIT_SIGNING_KEY": str(keypair[0])}

    def apply(release: int, limit: int | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "tfaudit", "apply", "-auto-approve", "-input=false",
                               f"-var=release={release}"], cwd=work, env=env, capture_output=True, text=True,
                              timeout=300, preexec_fn=_limited(limit) if limit else None)

    first = apply(1)
    assert first.returncode == 0, first.stderr
    before = ledger.read_bytes()
    started_line = next(ln for ln in before.splitlines() if b'"type":"run.started"' in ln)
    limit = len(before) + len(started_line) + 600  # room for this run's run.started, not for its closing batch
    assert max(p.stat().st_size for p in work.glob("*.tfstate*")) < limit - 2000  # terraform's own files fit

    full = apply(2, limit)
    assert full.returncode == 4, full.stdout + full.stderr
    errors = [ln for ln in full.stderr.splitlines() if ln.startswith("tfaudit: error:")]
    assert len(errors) == 1 and "cannot write the ledger" in errors[0] and "File too large" in errors[0]
    assert "Traceback" not in full.stderr
    after = ledger.read_bytes()
    assert after.startswith(before) and after.endswith(b"\n")
    added = after[len(before):].splitlines()
    assert [json.loads(ln)["type"] for ln in added] == ["run.started"]  # the batch left no byte behind
    state = json.loads((work / "terraform.tfstate").read_text())
    network = next(r for r in state["resources"] if r["name"] == "network")
    assert network["instances"][0]["attributes"]["input"]["value"]["release"] == 2  # terraform's own write was not limited

    again = apply(3)  # space is back
    assert again.returncode == 0, again.stderr
    verify = subprocess.run([sys.executable, "-m", "tfaudit", "verify", str(ledger), "--public-key", str(keypair[1]),
                             "--json"], cwd=work, env=env, capture_output=True, text=True, timeout=120)
    problems = json.loads(verify.stdout)["problems"]
    assert {p["kind"] for p in problems} <= {"unfinished_run"}, problems  # chain intact; run 2 has no run.finished
    assert ledger.read_bytes().startswith(after)
