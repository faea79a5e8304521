"""The file store keeps the LedgerStore contract: tail, forward and backward reads, URL forms."""

from __future__ import annotations

from pathlib import Path

import pytest

from tfaudit.errors import UsageError
from tfaudit.trail.ledger import Ledger
from tfaudit.trail.signing import generate_keypair, line_digest, load_signer
from tfaudit.trail.store import LedgerStore, Tail, open_store
from trail_factory import Res, add_run




@pytest.fixture()
def signer(tmp_path: Path):
    generate_keypair(tmp_path / "k")
    return load_signer(tmp_path / "k")


def test_open_store_picks_file_for_paths_and_refuses_unknown_schemes(tmp_path: Path) -> None:
    assert isinstance(open_store(tmp_path / "l.jsonl"), Ledger)
    assert isinstance(open_store(f"file://{tmp_path}/l.jsonl"), LedgerStore)
    with pytest.raises(UsageError, match="unknown ledger store"):
        open_store("ftp://host/x")


def test_tail_and_reads_both_ways_agree(tmp_path: Path, signer) -> None:
    store = open_store(tmp_path / "l.jsonl")
    assert store.tail() == Tail(0, None) and not store.exists()
    add_run(tmp_path / "l.jsonl", signer, time="2026-01-01T00:00:00Z", resources=[Res("a.b", "create")] * 3)
    fwd = list(store.lines())
    back = list(store.lines_backward())
    assert [n for n, _ in fwd] == [1, 2, 3, 4, 5]
    assert back == list(reversed(fwd))
    assert store.tail() == Tail(5, line_digest(fwd[-1][1].rstrip(b"\n")))
    assert [n for n, _ in store.lines(4)] == [4, 5]


def _ledger(tmp_path: Path, signer, runs: int = 30) -> Path:
    path = tmp_path / "l.jsonl"
    for i in range(runs):
        add_run(path, signer, time=f"2026-01-01T00:{i % 60:02d}:00Z", resources=[Res(f"a.r{i}", "create")] * 3)
    return path


def test_reading_from_a_position_seeks_and_agrees_with_a_full_read(tmp_path: Path, signer, monkeypatch) -> None:
    from tfaudit.trail import filelines

    monkeypatch.setattr(filelines, "CHUNK", 256)
    monkeypatch.setattr(filelines, "PROBE", 128)  # many bisection steps on a small file
    path = _ledger(tmp_path, signer)
    store = open_store(path)
    full = list(store.lines())
    assert len(full) == 150
    for start in (1, 2, 17, 75, 149, 150, 151, 400):
        assert list(store.lines(start)) == full[start - 1:], start
    assert list(store.lines_backward()) == list(reversed(full))


def test_a_damaged_ledger_is_read_whole_from_the_start(tmp_path: Path, signer, monkeypatch) -> None:
    """Reading from position 1 counts lines (what verify does); reads that seek take positions from
    chain.seq, which in a ledger with a removed line differ from the count: verify reports that."""
    from tfaudit.trail import filelines

    monkeypatch.setattr(filelines, "CHUNK", 256)
    monkeypatch.setattr(filelines, "PROBE", 128)
    path = _ledger(tmp_path, signer, runs=10)
    lines = path.read_bytes().splitlines(keepends=True)
    lines[20] = b"not json\n"
    del lines[30]  # a removed line: the seqs no longer match the line numbers
    path.write_bytes(b"".join(lines) + b'{"torn')
    store = open_store(path)
    counted = [(n, raw) for n, raw in enumerate(path.read_bytes().splitlines(keepends=True), start=1)]
    assert list(store.lines()) == counted
    raws = [raw for _, raw in counted]
    assert [raw for _, raw in store.lines_backward()] == list(reversed(raws))
    got = [raw for _, raw in store.lines(45)]
    assert got == raws[-len(got):] and got[0] in (raws[44], raws[43])  # line 45 counted, or chain.seq 45


def test_a_snapshot_does_not_see_later_appends(tmp_path: Path, signer) -> None:
    path = _ledger(tmp_path, signer, runs=2)
    store = open_store(path)
    snap = store.snapshot()
    before = list(snap.lines())
    add_run(path, signer, time="2026-01-02T00:00:00Z", resources=[Res("a.b", "create")])
    assert list(snap.lines()) == before and list(snap.lines_backward()) == list(reversed(before))
    assert snap.tail().seq == len(before) < store.tail().seq


def test_a_missing_ledger_is_exit_64_for_readers_and_an_empty_tail(tmp_path: Path) -> None:
    from tfaudit.errors import ExitCode, LedgerNotFound
    from tfaudit.trail.store import open_existing

    store = open_store(tmp_path / "none.jsonl")
    assert store.tail() == Tail(0, None) and list(store.lines_backward()) == []
    for read in (lambda: list(store.lines()), lambda: open_existing(tmp_path / "none.jsonl")):
        with pytest.raises(LedgerNotFound) as e:
            read()
        assert e.value.exit_code is ExitCode.USAGE


def test_only_the_file_store_opens_a_ledger_file() -> None:
    """Every other module reads and writes the ledger through tfaudit.trail.store (issue 9)."""
    import ast

    root = Path(__file__).resolve().parents[2] / "tfaudit"
    openers = {"open", "os.open", "fdopen", "read_bytes", "read_text", "write_bytes", "write_text", "flock"}
    offenders = []
    for py in root.rglob("*.py"):
        rel = py.relative_to(root).as_posix()
        if rel == "trail/ledger.py":
            continue
        for node in ast.walk(ast.parse(py.read_text(), rel)):
            if not isinstance(node, ast.Call):
                continue
            func = ast.unparse(node.func)
            name = func.rsplit(".", 1)[-1]
            if func not in openers and name not in openers:
                continue
            text = ast.unparse(node).lower()
            if "ledger" in text and "outbox" not in text:
                offenders.append(f"{rel}:{node.lineno}: {ast.unparse(node)}")
        if "import fcntl" in py.read_text() and "ledger" in py.read_text().lower() and rel not in (
                "sinks/outbox.py", "sinks/file.py", "run/journal.py"):  # journal.py locks a run's journal files
            offenders.append(f"{rel}: imports fcntl and touches a ledger")
    assert offenders == []


def test_the_out_of_band_check_reads_only_the_tail(tmp_path: Path, signer, monkeypatch) -> None:
    """run.outofband.last_known_state finds the newest state record reading backwards (issue 13)."""
    import os
    from types import SimpleNamespace

    from tfaudit import records
    from tfaudit.run.outofband import last_known_state

    path = _ledger(tmp_path, signer, runs=250)
    store = open_store(path)
    run = records.RunInfo(id=records.RunId(records.new_id()), command="apply", args=(), tool="terraform",
                          tool_version="1.11.4", workspace="default", working_dir="/w")
    actor = {"user": "alice", "os_user": "alice", "hostname": None, "git": None, "ci": None}
    after = SimpleNamespace(serial=3, lineage="l", sha256="0" * 64, resources=[])
    seq = store.append([records.base_record("run.finished", run, actor, outcome=records.outcome_body(
        status="succeeded", exit_code=0, counts={}, state_before=None, state_after=after))], signer)[0].seq
    add_run(path, signer, time="2026-01-02T00:00:00Z", resources=[Res("a.b", "create")] * 3)
    read = []
    real = os.pread
    monkeypatch.setattr(os, "pread", lambda fd, n, off: read.append(n) or real(fd, n, off))
    known = last_known_state(store, "/w", "default")
    assert known is not None and known.seq == seq and known.state == {**known.state, "serial": 3}
    size = path.stat().st_size
    assert sum(read) < size / 4, (sum(read), size)  # the tail, not the ledger
