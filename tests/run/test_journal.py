"""A child that outlives tfaudit: its stdout into a journal file that tfaudit follows (no terraform)."""

from __future__ import annotations

import os
import stat
import sys
from pathlib import Path

from tfaudit.run.journal import Journal, RunLock, pending
from tfaudit.run.recover import recovered_status
from tfaudit.terraform.proc import run_journaled

CHILD = "import sys, time\nfor i in range(3):\n    print('line', i, flush=True)\n    time.sleep(0.2)\nsys.stdout.write('tail')\n"


def test_the_child_writes_the_journal_in_its_own_session_and_every_line_is_followed(tmp_path: Path) -> None:
    journal = tmp_path / "run.jsonl"
    seen: list[bytes] = []
    sessions: list[int] = []
    rc = run_journaled([sys.executable, "-c", CHILD], journal, seen.append,
                       on_start=lambda pid: sessions.append(os.getsid(pid)))
    assert rc == 0
    assert seen == [b"line 0\n", b"line 1\n", b"line 2\n", b"tail"]
    assert journal.read_bytes() == b"line 0\nline 1\nline 2\ntail"
    assert stat.S_IMODE(journal.stat().st_mode) == 0o600
    assert sessions and sessions[0] != os.getsid(0)  # a kill of tfaudit's session does not reach it


def test_a_run_in_progress_holds_its_lock_and_a_dead_ones_can_be_taken(tmp_path: Path) -> None:
    j = Journal(tmp_path / ".tfaudit-journal", "a" * 32)
    held = RunLock(j)
    assert held.acquire(wait=True)
    j.write_meta({"run_id": j.run_id})
    assert [p.run_id for p in pending(j.directory)] == [j.run_id]
    assert not RunLock(j).acquire(wait=False)  # the running tfaudit has it
    held.release()  # as the kernel does when that process dies
    other = RunLock(j)
    assert other.acquire(wait=False)
    other.release()
    j.remove()
    assert pending(j.directory) == []


def test_recovered_statuses_never_claim_more_than_the_evidence() -> None:
    present = {"terraform_data.a": False, "terraform_data.t": True}
    assert recovered_status("succeeded", ["create"], True, present, "terraform_data.a") == ("succeeded", None)
    assert recovered_status("started", ["create"], False, present, "terraform_data.a")[0] == "unknown"
    assert recovered_status("succeeded", ["create"], True, present, "terraform_data.gone")[0] == "unknown"
    assert recovered_status("succeeded", ["update"], True, present, "terraform_data.t")[0] == "unknown"  # tainted
    assert recovered_status("succeeded", ["delete"], True, present, "terraform_data.a")[0] == "unknown"
    assert recovered_status("succeeded", ["delete"], True, present, "terraform_data.gone") == ("succeeded", None)
    assert recovered_status("not_attempted", ["create"], False, present, "terraform_data.x") == ("not_attempted", None)
