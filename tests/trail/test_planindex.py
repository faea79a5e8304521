"""Finding the plan.recorded record of a saved plan is an index lookup (issue 13), and the index is
never trusted without reading back the record it points to."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tfaudit import records
from tfaudit.run.binding import lookup
from tfaudit.trail import planindex
from tfaudit.trail.signing import generate_keypair, load_signer
from tfaudit.trail.store import open_store
from trail_factory import Res, add_run


@pytest.fixture()
def signer(tmp_path: Path):
    generate_keypair(tmp_path / "k")
    return load_signer(tmp_path / "k")


def _plan(store, signer, sha: str, plan_file: str, work: Path) -> int:
    run = records.RunInfo(id=records.RunId(records.new_id()), command="plan", args=(), tool="terraform",
                          tool_version="1.11.4", workspace="default", working_dir=str(work), plan_sha256=sha,
                          plan_file=plan_file)
    actor = {"user": "alice", "os_user": "alice", "hostname": "h", "git": None, "ci": None}
    rec = records.base_record("plan.recorded", run, actor, plan={"sha256": sha, "summary": {}, "changes": []})
    return store.append([rec], signer)[0].seq


def _applies(ledger: Path, signer, n: int) -> None:
    for i in range(n):
        add_run(ledger, signer, time=f"2026-01-01T00:{i % 60:02d}:00Z", resources=[Res(f"a.r{i}", "create")] * 2)


def test_lookup_finds_the_newest_plan_by_sha_and_by_path(tmp_path: Path, signer) -> None:
    ledger = tmp_path / "ledger.jsonl"
    store = open_store(ledger)
    _applies(ledger, signer, 5)
    s1 = _plan(store, signer, "1" * 64, "p.tfplan", tmp_path)
    _applies(ledger, signer, 5)
    s2 = _plan(store, signer, "2" * 64, "p.tfplan", tmp_path)
    _plan(store, signer, "3" * 64, str(tmp_path / "other.tfplan"), tmp_path)
    _applies(ledger, signer, 5)

    found = lookup(store, "1" * 64, tmp_path / "p.tfplan", signer)
    assert found.match is not None and found.match["chain"]["seq"] == s1
    assert found.same_path is not None and found.same_path["chain"]["seq"] == s2  # the newest for the path
    assert (tmp_path / "ledger.jsonl.plans").exists()
    none = lookup(store, "9" * 64, tmp_path / "nowhere.tfplan", signer)
    assert none.match is None and none.same_path is None and none.other_key is None
    generate_keypair(tmp_path / "k2")
    other = lookup(store, "2" * 64, tmp_path / "p.tfplan", load_signer(tmp_path / "k2"))
    assert other.match is None and other.other_key is not None and other.other_key["chain"]["seq"] == s2


def test_the_index_reads_only_what_was_appended_since(tmp_path: Path, signer, monkeypatch) -> None:
    ledger = tmp_path / "ledger.jsonl"
    store = open_store(ledger)
    _applies(ledger, signer, 20)
    _plan(store, signer, "1" * 64, "p.tfplan", tmp_path)
    seen: list[int] = []
    real = planindex.PlanIndex.add

    def spy(self, lines):  # type: ignore[no-untyped-def]
        def counted():  # type: ignore[no-untyped-def]
            for n, raw in lines:
                seen.append(n)
                yield n, raw
        real(self, counted())

    monkeypatch.setattr(planindex.PlanIndex, "add", spy)
    lookup(store, "1" * 64, tmp_path / "p.tfplan", signer)
    total = store.tail().seq
    assert seen == list(range(1, total + 1))  # built once from the start
    seen.clear()
    _applies(ledger, signer, 2)
    s = _plan(store, signer, "2" * 64, "q.tfplan", tmp_path)
    found = lookup(store, "2" * 64, tmp_path / "q.tfplan", signer)
    assert found.match is not None and found.match["chain"]["seq"] == s
    assert seen == list(range(total + 1, s + 1))  # then only the new lines


def test_a_stale_or_forged_index_is_rebuilt(tmp_path: Path, signer) -> None:
    ledger = tmp_path / "ledger.jsonl"
    store = open_store(ledger)
    _applies(ledger, signer, 3)
    s1 = _plan(store, signer, "1" * 64, "p.tfplan", tmp_path)
    _applies(ledger, signer, 3)
    assert lookup(store, "1" * 64, tmp_path / "p.tfplan", signer).match is not None
    idx_path = tmp_path / "ledger.jsonl.plans"
    doc = json.loads(idx_path.read_text())
    doc["by_sha"] = {"1" * 64: [2]}  # points at a resource.changed record
    idx_path.write_text(json.dumps(doc))
    found = lookup(store, "1" * 64, tmp_path / "p.tfplan", signer)
    assert found.match is not None and found.match["chain"]["seq"] == s1
    doc["by_sha"] = {}  # says the plan was never recorded
    idx_path.write_text(json.dumps(doc))
    # the index's own last line is unchanged, so it is used: a forged "no entry" is the one thing it can hide,
    # and it only makes require_recorded_plan refuse (fail closed)
    assert lookup(store, "1" * 64, tmp_path / "p.tfplan", signer).match is None
    idx_path.write_text("garbage")
    assert lookup(store, "1" * 64, tmp_path / "p.tfplan", signer).match["chain"]["seq"] == s1
