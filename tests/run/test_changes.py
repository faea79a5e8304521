"""tfaudit.run.changes: the plan read as `tfaudit apply` reads it (streamed, changes spooled on disk)
gives the same records, findings and learned secrets as the plan parsed whole, on the real-world
corpus and on a big generated plan."""

from __future__ import annotations

import importlib.util
import io
import os
import stat
from pathlib import Path
from typing import Any

import pytest

from tfaudit import records
from tfaudit.analysis.engine import Analyzer, analyse_plan
from tfaudit.errors import PlanError
from tfaudit.parse.plan import parse_plan
from tfaudit.parse.spool import ChangeSpool
from tfaudit.redact import Redactor
from tfaudit.run import changes as changes_mod

from corpus import corpus_file, manifest_rows

ROOT = Path(__file__).resolve().parents[2]
PLAN_ROWS = manifest_rows("plan")
_OUTCOMES = (
    records.Outcome("planned"),
    records.Outcome("failed", {"summary": "boom", "detail": "d"}, 1.5, (records.Phase("create", records.Status.FAILED),),
                    (records.Evidence("events", "create errored"),)),
)


class _NoFindings:
    def resource_findings(self, address: str) -> dict[str, Any]:
        return {}


def _whole(data: bytes) -> dict[str, Any]:
    """What tfaudit apply recorded before: the plan parsed whole, then every body built."""
    plan = parse_plan(data, source="p")
    redactor = Redactor()
    records.learn_plan_secrets(plan, redactor)
    changes = [ch for ch in plan.resource_changes if records.is_recorded_change(ch)]
    return {
        "plan": records.plan_body(plan, "0" * 64, redactor),
        "bodies": [records.resource_body(ch, o, redactor) for o in _OUTCOMES for ch in changes],
        "findings": [f.as_dict() for f in analyse_plan(plan, Analyzer()).finish().findings],
        "secrets": redactor._known,
        "changes": len(changes),
    }


def _streamed(data: bytes, spool_dir: Path, keep_decoded: int = 0) -> dict[str, Any]:
    """What it records now: the plan as tfaudit.run.changes reads it, the changes decoded from the spool."""
    redactor = Redactor()
    read = changes_mod.read_plan(io.BytesIO(data), "p", redactor, spool_dir, keep_decoded=keep_decoded)
    try:
        bodies = [body for o in _OUTCOMES for body in _bodies(read.changes, o, redactor)]
        return {
            "plan": records.plan_body(read.plan, "0" * 64, redactor, read.changes),
            "bodies": bodies,
            "findings": [f.as_dict() for f in analyse_plan(read.plan, Analyzer()).finish().findings],
            "secrets": redactor._known,
            "changes": len(read.changes),
        }
    finally:
        read.close()


def _bodies(changes: Any, outcome: records.Outcome, redactor: Redactor) -> list[dict[str, Any]]:
    return [{**records.resource_body(ch, outcome, redactor)} for ch in changes]


def _same(data: bytes, tmp_path: Path) -> None:
    try:
        before = _whole(data)
    except PlanError as e:
        with pytest.raises(PlanError) as info:
            _streamed(data, tmp_path)
        assert (info.value.message, info.value.hint) == (e.message, e.hint)
        return
    assert _streamed(data, tmp_path) == before  # every change spooled, and decoded again from the spool
    kept = changes_mod.read_plan(data, "p", Redactor(), tmp_path, keep_decoded=1 << 30)  # small plans: kept
    assert len(kept.changes) == before["changes"]
    assert tuple(kept.plan.resource_changes) == tuple(parse_plan(data, source="p").resource_changes)
    kept.close()


@pytest.mark.parametrize("row", PLAN_ROWS, ids=[r["path"] for r in PLAN_ROWS])
def test_corpus_plan_gives_the_same_records_findings_and_secrets(row: dict[str, str], tmp_path: Path) -> None:
    _same(corpus_file(row["path"]).read_bytes(), tmp_path)
    assert list(tmp_path.iterdir()) == []  # the spool is never linked into the directory


def _generate(n: int, path: Path) -> None:
    spec = importlib.util.spec_from_file_location("bench_analyze", ROOT / "scripts" / "bench_analyze.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.generate_plan(n, path)


def test_generated_plan_gives_the_same_records(tmp_path: Path) -> None:
    path = tmp_path / "plan.json"
    _generate(600, path)
    spool = tmp_path / "spool"
    spool.mkdir()
    _same(path.read_bytes(), spool)


@pytest.mark.slow
def test_big_generated_plan_gives_the_same_records(tmp_path: Path) -> None:
    path = tmp_path / "plan.json"
    _generate(10_000, path)
    spool = tmp_path / "spool"
    spool.mkdir()
    data = path.read_bytes()
    assert _streamed(data, spool) == _whole(data)


def test_spooled_changes_are_private_and_read_back_in_any_order(tmp_path: Path) -> None:
    path = tmp_path / "plan.json"
    _generate(50, path)
    data = path.read_bytes()
    whole = parse_plan(data, source="p")
    read = changes_mod.read_plan(data, "p", Redactor(), tmp_path, keep_decoded=0)
    spool = read.plan.resource_changes
    assert isinstance(spool, ChangeSpool)
    fd = spool._file.fileno()
    assert stat.S_IMODE(os.fstat(fd).st_mode) == 0o600
    assert [p.name for p in tmp_path.iterdir()] == ["plan.json"]  # unlinked from the start
    assert spool[-1] == whole.resource_changes[-1] and spool[3] == whole.resource_changes[3]
    assert list(spool[2:5]) == list(whole.resource_changes[2:5])
    assert tuple(spool) == whole.resource_changes
    read.close()
    with pytest.raises(ValueError):
        spool[0]


def test_a_state_without_values_records_the_same_reference() -> None:
    from tfaudit.parse.state import parse_state

    rows = manifest_rows("state")
    if not rows:
        pytest.skip("real-world corpus not present")
    for row in rows:
        try:
            state = parse_state(corpus_file(row["path"]).read_bytes(), source="s")
        except Exception:  # noqa: BLE001 - states the parser refuses are tested elsewhere
            continue
        if state is None:
            continue
        light = state.without_values()
        assert records.state_ref(light) == records.state_ref(state)
        assert all(r.attributes is None for r in light.resources)
