"""All-or-nothing appends and `tfaudit ledger repair` (issue 10, case 4)."""

from __future__ import annotations

import json
import resource
import signal
import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tfaudit.errors import ExitCode, LedgerError
from tfaudit.trail.repair import check_repairs, digest
from tfaudit.trail.signing import generate_keypair, load_signer
from tfaudit.trail.store import open_store
from trail_factory import Res, add_run

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture()
def signer(tmp_path: Path):
    generate_keypair(tmp_path / "k")
    return load_signer(tmp_path / "k")


def _limit_file_size(limit: int) -> Callable[[], None]:
    def pre() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # writes past the limit fail with EFBIG instead of killing
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
    return pre


def test_a_batch_that_does_not_fit_leaves_the_ledger_byte_identical(tmp_path: Path, signer) -> None:
    ledger = tmp_path / "l.jsonl"
    add_run(ledger, signer, time="2026-01-01T00:00:00Z", resources=[Res("a.b", "create")])
    before = ledger.read_bytes()
    code = textwrap.dedent(f"""
        import sys
        from pathlib import Path
        from tfaudit.errors import LedgerError
        from tfaudit.trail.signing import load_signer
        sys.path.insert(0, {str(ROOT / 'tests')!r})
        from trail_factory import Res, add_run
        try:
            add_run(Path({str(ledger)!r}), load_signer(Path({str(tmp_path / 'k')!r})), time="2026-01-02T00:00:00Z",
                    resources=[Res("a.r%d" % i, "create") for i in range(40)])
        except LedgerError as e:
            print(str(e)); sys.exit(int(e.exit_code))
    """)
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT,
                         preexec_fn=_limit_file_size(len(before) + 3000), timeout=60)
    assert res.returncode == ExitCode.AUDIT_WRITE, res.stdout + res.stderr
    assert "cannot write the ledger" in res.stdout and "as it was before this batch" in res.stdout
    assert ledger.read_bytes() == before
    add_run(ledger, signer, time="2026-01-03T00:00:00Z", resources=[Res("a.b", "update")])  # space is back
    assert ledger.read_bytes().startswith(before) and ledger.read_bytes().endswith(b"\n")


def _verify_json(run: Callable[..., Any], ledger: Path, pub: Path) -> dict[str, Any]:
    res = run("verify", str(ledger), "--public-key", str(pub), "--json")
    return json.loads(res.stdout)


def test_repair_moves_a_torn_tail_aside_with_a_signed_record(tmp_path: Path, signer) -> None:
    ledger = tmp_path / "l.jsonl"
    add_run(ledger, signer, time="2026-01-01T00:00:00Z", resources=[Res("a.b", "create")])
    clean = ledger.read_bytes()
    torn = b'{"schema":"tfaudit.record/v1","id":"0123'
    ledger.write_bytes(clean + torn)
    store = open_store(ledger)
    with pytest.raises(LedgerError, match="incomplete line.*ledger repair"):
        add_run(ledger, signer, time="2026-01-02T00:00:00Z", resources=[Res("a.b", "update")])
    assert ledger.read_bytes() == clean + torn

    from tfaudit.trail.repair import repair_ledger

    done = repair_ledger(store, signer, {"user": "alice", "os_user": "alice", "hostname": None, "git": None,
                                         "ci": None}, tmp_path)
    assert done is not None
    q = done.torn.quarantine
    assert q == tmp_path / f"l.jsonl.torn-{len(clean)}-{len(clean) + len(torn)}" and q.read_bytes() == torn
    data = ledger.read_bytes()
    assert data.startswith(clean) and data.endswith(b"\n") and data.count(b"\n") == clean.count(b"\n") + 1
    rec = json.loads(data.splitlines()[-1])
    assert rec["type"] == "ledger.repaired" and rec["chain"]["seq"] == done.seq == clean.count(b"\n") + 1
    assert rec["detail"] == {"offset": len(clean), "length": len(torn), "sha256": digest(torn),
                             "quarantine": q.name, "after_seq": done.seq - 1}
    assert repair_ledger(store, signer, rec["actor"], tmp_path) is None  # nothing left to repair
    assert ledger.read_bytes() == data
    seen = check_repairs(store, [(done.seq, rec)])
    assert [s.problem for s in seen] == [None]
    q.write_bytes(torn + b"x")
    assert "does not hold the bytes" in str(check_repairs(store, [(done.seq, rec)])[0].problem)
    q.unlink()
    assert "missing" in str(check_repairs(store, [(done.seq, rec)])[0].problem)


def _tfaudit(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "tfaudit", *args], cwd=cwd, capture_output=True, text=True, timeout=120)


def test_ledger_repair_cli_then_verify_reports_a_repair_not_tampering(tmp_path: Path, signer) -> None:
    ledger = tmp_path / "l.jsonl"
    add_run(ledger, signer, time="2026-01-01T00:00:00Z", resources=[Res("a.b", "create")])
    ledger.write_bytes(ledger.read_bytes() + b'{"schema":"tfaudit.rec')
    pub = tmp_path / "k.pub"
    torn = _tfaudit("verify", str(ledger), "--public-key", str(pub), cwd=tmp_path)
    assert torn.returncode == 1 and "torn_line" in torn.stdout

    res = _tfaudit("ledger", "repair", "--ledger", str(ledger), "--signing-key", str(tmp_path / "k"), cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    assert "moved 22 torn byte(s)" in res.stdout and "ledger.repaired at line 4" in res.stdout
    ok = _tfaudit("verify", str(ledger), "--public-key", str(pub), "--json", cwd=tmp_path)
    doc = json.loads(ok.stdout)
    assert ok.returncode == 0 and doc["problems"] == [] and len(doc["repairs"]) == 1
    assert "moved to l.jsonl.torn-" in doc["repairs"][0] and "(digest checks)" in doc["repairs"][0]
    again = _tfaudit("ledger", "repair", "--ledger", str(ledger), "--signing-key", str(tmp_path / "k"), cwd=tmp_path)
    assert again.returncode == 0 and "nothing to repair" in again.stdout

    next(tmp_path.glob("l.jsonl.torn-*")).write_bytes(b"something else")
    bad = _tfaudit("verify", str(ledger), "--public-key", str(pub), cwd=tmp_path)
    assert bad.returncode == 1 and ":4: repair: the quarantine file" in bad.stdout


def test_ledger_repair_of_a_missing_ledger_is_exit_64(tmp_path: Path, signer) -> None:
    res = _tfaudit("ledger", "repair", "--ledger", str(tmp_path / "none.jsonl"), "--signing-key", str(tmp_path / "k"),
                   cwd=tmp_path)
    assert res.returncode == 64 and "does not exist" in res.stderr and "Traceback" not in res.stderr
