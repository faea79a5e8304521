"""`tfaudit log` and `tfaudit history` through the run index (`LEDGER.runs`, issue 13): the same
output as reading the whole ledger, and an index that is only ever a cache (appended runs show
up, a deleted index is rebuilt, a tampered or foreign one is not believed)."""

from __future__ import annotations

import os
import shutil
import sqlite3
import stat
from pathlib import Path
from typing import Any

import pytest

from tfaudit import records
from tfaudit.cli.app import main
from tfaudit.trail.ledger import Ledger
from tfaudit.trail.repair import repair_ledger
from tfaudit.trail.signing import Signer, generate_keypair, load_signer
from trail_factory import Res, add_run

ACTOR = {"user": "dave", "os_user": "dave", "hostname": "h", "git": {"user_email": "dave@example.com"}, "ci": None}


def _run_info(command: str = "apply", workspace: str = "prod") -> records.RunInfo:
    return records.RunInfo(id=records.RunId(records.new_id()), command=command, args=(), tool="terraform",
                           tool_version="1.11.4", workspace=workspace, working_dir="/w/" + workspace)


def _rec(rtype: str, run: records.RunInfo, time: str, **body: Any) -> dict[str, Any]:
    rec = records.base_record(rtype, run, ACTOR, **body)
    rec["time"] = time
    return rec


def _res(address: str, status: str = "succeeded", **more: Any) -> dict[str, Any]:
    return {"address": address, "action": "update", "actions": ["update"], "status": status,
            "changed_paths": ["input"], "before": {"input": 1}, "after": {"input": 2}, **more}


def _build(ledger: Path, signer: Signer) -> None:
    """Several runs, workspaces and actors; a failure; a plan; a run finished later by recovery; a
    moved resource; findings only on a resource; changes made outside tfaudit; drift; an import;
    a line that is not JSON, a record written twice, and a torn tail that was repaired."""
    store = Ledger(ledger)
    add_run(ledger, signer, time="2026-03-01T10:00:00.000000Z", actor="alice", workspace="prod",
            resources=[Res("terraform_data.db", "create"), Res("module.net.terraform_data.vpc[0]", "create")])
    add_run(ledger, signer, time="2026-03-02T10:00:00.000000Z", actor="bob", workspace="staging", status="partial",
            resources=[Res("terraform_data.db"), Res("terraform_data.cache", "create", "failed", error="boom")])
    add_run(ledger, signer, time="2026-03-03T10:00:00.000000Z", actor="carol", workspace="dev", command="plan",
            resources=[Res("terraform_data.db", "delete")])
    killed = _run_info()
    store.append([_rec("run.started", killed, "2026-03-04T10:00:00.000000Z", plan={"summary": {"update": 1}}),
                  _rec("resource.changed", killed, "2026-03-04T10:00:01.000000Z", resource=_res(
                      "terraform_data.db", "interrupted", findings=[{"rule": "R1", "address": "terraform_data.db",
                                                                     "message": "late finding"}]))], signer)
    add_run(ledger, signer, time="2026-03-05T10:00:00.000000Z", actor="alice", workspace="prod",
            resources=[Res("terraform_data.database", "move", previous_address="terraform_data.db")])
    store.append([_rec("run.finished", killed, "2026-03-06T10:00:00.000000Z",
                       outcome={"status": "interrupted", "exit_code": 1, "counts": {"interrupted": 1},
                                "reason": "recovered"})], signer)
    oob = _run_info()
    store.append([_rec("state.out_of_band", oob, "2026-03-07T10:00:00.000000Z",
                       detail={"resources": {"added": ["terraform_data.app"], "removed": ["terraform_data.cache"],
                                             "changed": ["terraform_data.database"]}}),
                  _rec("run.started", oob, "2026-03-07T10:00:02.000000Z", plan={"summary": {}}),
                  _rec("resource.changed", oob, "2026-03-07T09:59:00.000000Z", resource=_res("terraform_data.app")),
                  _rec("run.finished", oob, "2026-03-07T10:00:03.000000Z",
                       outcome={"status": "succeeded", "exit_code": 0, "counts": {"succeeded": 1}})], signer)
    store.append([_rec("state.out_of_band", _run_info(workspace="dev"), "2026-03-07T11:00:00.000000Z",
                       detail={"resources": {"changed": ["terraform_data.app"]}})], signer)
    drift = _run_info("drift", "prod")
    store.append([_rec("drift.detected", drift, "2026-03-08T10:00:00.000000Z"),
                  _rec("drift.detected", drift, "2026-03-08T10:00:00.000000Z")], signer)
    imp = _run_info("import", "staging")
    store.append([_rec("state.changed", imp, "2026-03-09T10:00:00.000000Z", detail={"status": "succeeded", "exit_code": 0})],
                 signer)
    lines = ledger.read_bytes().splitlines(keepends=True)
    with ledger.open("ab") as f:
        f.write(b"this is not a record\n" + lines[3])  # the scan skips both; so must the index
    add_run(ledger, signer, time="2026-03-10T10:00:00.000000Z", actor="bob", workspace="dev",
            resources=[Res("terraform_data.database")])
    with ledger.open("ab") as f:
        f.write(b'{"torn":')
    repair_ledger(store, signer, ACTOR, ledger.parent)
    add_run(ledger, signer, time="2026-03-11T10:00:00.000000Z", actor="carol", workspace="prod", status="failed",
            resources=[Res("terraform_data.app", "update", "failed", error="quota")])


@pytest.fixture
def ledger(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setattr("tfaudit.trail.ledger.validate_record", lambda rec: None)  # odd records on purpose
    key, _ = generate_keypair(tmp_path / "keys" / "key")
    path = tmp_path / "ledger.jsonl"
    _build(path, load_signer(key))
    monkeypatch.undo()
    return path


def tfaudit(capsys: pytest.CaptureFixture[str], *args: str) -> str:
    capsys.readouterr()
    assert main(list(args)) == 0
    return capsys.readouterr().out


def _index(ledger: Path) -> Path:
    return ledger.with_name(ledger.name + ".runs")


READS = [("log",), ("log", "--format", "json"), ("log", "--limit", "3"), ("log", "--actor", "*@example.com"),
         ("log", "--workspace", "prod", "--outcome", "succeeded,interrupted"), ("log", "--since", "2026-03-05",
                                                                                 "--until", "2026-03-09T12:00:00Z")]
HISTORIES = ["terraform_data.database", "terraform_data.cache", "terraform_data.app", "module.net",
             "terraform_data.*", "nothing.here"]


def _outputs(capsys: pytest.CaptureFixture[str], *ledgers: Path) -> list[str]:
    """Every read, of these ledgers (one: through the index; the same one twice: the whole-ledger scan,
    as for any several ledgers)."""
    given = [str(p) for p in ledgers]
    out = [tfaudit(capsys, *args[:1], *given, *args[1:]) for args in READS]
    for address in HISTORIES:
        flags = [a for p in given for a in ("--ledger", p)]
        out += [tfaudit(capsys, "history", address, *flags, *more) for more in ((), ("--format", "json"), ("--values",))]
    return out


def test_log_and_history_print_the_same_with_and_without_the_index(ledger: Path, capsys: pytest.CaptureFixture[str]) -> None:
    scanned = _outputs(capsys, ledger, ledger)
    assert not _index(ledger).exists()  # several ledgers: no index
    built = _outputs(capsys, ledger)  # the first read builds the index
    assert _index(ledger).exists()
    assert built == scanned
    assert _outputs(capsys, ledger) == scanned  # and the next ones use it
    print(scanned[0], scanned[len(READS)])
    assert "interrupted" in scanned[0] and "out_of_band" in scanned[0] and "drifted" in scanned[0]
    assert "(moved from terraform_data.db)" in scanned[len(READS)]


def test_an_appended_run_shows_up_and_the_ledger_is_not_written(
        ledger: Path, capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    before = tfaudit(capsys, "log", str(ledger))
    size = ledger.stat().st_size
    assert tfaudit(capsys, "log", str(ledger)) == before
    assert ledger.stat().st_size == size
    run = add_run(ledger, load_signer(tmp_path / "keys" / "key"), time="2030-04-01T00:00:00.000000Z", actor="erin",
                  workspace="qa", resources=[Res("terraform_data.new", "create")])
    after = tfaudit(capsys, "log", str(ledger))
    assert after.splitlines()[0].startswith("2030-04-01 00:00:00Z  erin") and run[:8] in after.splitlines()[0]
    assert after.splitlines()[1:] == before.splitlines()
    assert "erin" in tfaudit(capsys, "history", "terraform_data.new", "--ledger", str(ledger))
    assert after == tfaudit(capsys, "log", str(ledger), str(ledger))


def test_a_deleted_index_is_rebuilt(ledger: Path, capsys: pytest.CaptureFixture[str]) -> None:
    first = tfaudit(capsys, "log", str(ledger))
    _index(ledger).unlink()
    assert tfaudit(capsys, "log", str(ledger)) == first
    assert _index(ledger).exists()


def _tamper(index: Path, sql: str) -> None:
    conn = sqlite3.connect(index)
    with conn:
        conn.execute(sql)
    conn.close()


TAMPERING = [
    "UPDATE runs SET status = 'succeeded' WHERE status = 'failed'",  # a failure made a success
    "UPDATE runs SET time = '2000-01-01T00:00:00Z' WHERE status = 'failed'",  # the newest run made the oldest
    "UPDATE lines SET digest = zeroblob(32) WHERE pos = (SELECT MAX(pos) FROM lines)",
    "UPDATE lines SET off = off + 1",
    "UPDATE changes SET pos = (SELECT MIN(pos) FROM lines) WHERE address = 'terraform_data.cache'",
    "UPDATE finished SET pos = (SELECT MIN(pos) FROM lines)",
    "DELETE FROM meta",
    "UPDATE meta SET last_digest = zeroblob(32)",
    "PRAGMA user_version = 7",
]


@pytest.mark.parametrize("sql", TAMPERING)
def test_a_tampered_index_is_not_believed(ledger: Path, capsys: pytest.CaptureFixture[str], sql: str) -> None:
    truth = [tfaudit(capsys, "log", str(ledger), "--format", "json"),
             tfaudit(capsys, "history", "terraform_data.*", "--ledger", str(ledger), "--format", "json")]
    _tamper(_index(ledger), sql)
    assert [tfaudit(capsys, "log", str(ledger), "--format", "json"),
            tfaudit(capsys, "history", "terraform_data.*", "--ledger", str(ledger), "--format", "json")] == truth


def test_a_foreign_or_corrupt_index_is_rebuilt(ledger: Path, capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    truth = tfaudit(capsys, "log", str(ledger))
    other = tmp_path / "other" / "ledger.jsonl"
    add_run(other, load_signer(tmp_path / "keys" / "key"), time="2026-05-01T00:00:00.000000Z", actor="mallory")
    tfaudit(capsys, "log", str(other))
    for foreign in (_index(other).read_bytes(), b"not a database at all", b""):
        _index(ledger).write_bytes(foreign)
        assert tfaudit(capsys, "log", str(ledger)) == truth
    sqlite3.connect(_index(ledger)).executescript("DROP TABLE runs; CREATE TABLE runs (x);")
    assert tfaudit(capsys, "log", str(ledger)) == truth
    assert "mallory" not in tfaudit(capsys, "history", "*", "--ledger", str(ledger))


def test_a_torn_tail_is_read_as_the_scan_reads_it_then_the_index_carries_on(
        ledger: Path, capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    tfaudit(capsys, "log", str(ledger))
    with ledger.open("ab") as f:
        f.write(b'{"half a line')
    assert tfaudit(capsys, "log", str(ledger)) == tfaudit(capsys, "log", str(ledger), str(ledger))
    signer = load_signer(tmp_path / "keys" / "key")
    repair_ledger(Ledger(ledger), signer, ACTOR, tmp_path)
    add_run(ledger, signer, time="2026-06-01T00:00:00.000000Z", actor="frank")
    assert tfaudit(capsys, "log", str(ledger)) == tfaudit(capsys, "log", str(ledger), str(ledger))


def test_the_index_has_the_plan_index_mode_and_is_only_a_cache(
        ledger: Path, capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    from tfaudit.trail.store import save_sidecar

    old = os.umask(0o027)
    try:
        tfaudit(capsys, "log", str(ledger))
        save_sidecar(tmp_path / "like.plans", "{}\n")
    finally:
        os.umask(old)
    assert stat.S_IMODE(_index(ledger).stat().st_mode) == stat.S_IMODE((tmp_path / "like.plans").stat().st_mode) == 0o640
    copy = tmp_path / "copy" / "ledger.jsonl"
    copy.parent.mkdir()
    shutil.copy(ledger, copy)
    assert tfaudit(capsys, "log", str(copy)) == tfaudit(capsys, "log", str(ledger))
    assert sorted(p.name for p in copy.parent.iterdir()) == ["ledger.jsonl", "ledger.jsonl.runs"]


def test_an_index_that_cannot_be_written_leaves_the_reading_unchanged(
        ledger: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Where LEDGER.runs cannot be written (here a directory holds its name, which stops root too),
    log and history read the whole ledger and print what they always did."""
    truth = (tfaudit(capsys, "log", str(ledger), str(ledger)),
             tfaudit(capsys, "history", "terraform_data.database", "--ledger", str(ledger), "--ledger", str(ledger)))
    assert "terraform_data.database" in truth[1] and len(truth[0].splitlines()) > 3
    (_index(ledger) / "occupied").mkdir(parents=True)
    assert tfaudit(capsys, "log", str(ledger)) == truth[0]
    assert tfaudit(capsys, "history", "terraform_data.database", "--ledger", str(ledger)) == truth[1]
    assert sorted(p.name for p in _index(ledger).iterdir()) == ["occupied"]


def test_an_index_newer_than_the_reader_is_kept(ledger: Path, capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    """A reader whose snapshot predates lines another reader has indexed takes a newer snapshot
    (it does not rebuild the index, nor believe it beyond what it read)."""
    from tfaudit.query import _NoProgress, runindex

    tfaudit(capsys, "log", str(ledger))
    older = Ledger(ledger).snapshot()
    add_run(ledger, load_signer(tmp_path / "keys" / "key"), time="2030-01-01T00:00:00.000000Z", actor="gina")
    tfaudit(capsys, "log", str(ledger))
    inode = _index(ledger).stat().st_ino
    with pytest.raises(runindex.Ahead):
        with runindex.opened(_index(ledger), older, _NoProgress()):
            pass
    assert "gina" in tfaudit(capsys, "log", str(ledger)).splitlines()[0]
    assert _index(ledger).stat().st_ino == inode
