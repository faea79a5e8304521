"""Ledger.append_each: a run's records sealed and written as they are made, none kept, still all or nothing."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tfaudit import records
from tfaudit.trail import ledger as ledger_mod
from tfaudit.trail.ledger import Ledger
from tfaudit.trail.signing import generate_keypair, load_signer, load_verifier
from tfaudit.trail.store import EachAppender, read_lines
from tfaudit.trail.verify import verify_ledger
from trail_factory import Res, add_run, resource


@pytest.fixture()
def signer(tmp_path: Path) -> Any:
    generate_keypair(tmp_path / "k")
    return load_signer(tmp_path / "k")


def _run(n: int) -> list[dict[str, Any]]:
    run = records.RunInfo(id=records.RunId("1" * 32), command="apply", args=(), tool="terraform",
                          tool_version="1.11.4", workspace="default", working_dir="/w", started_at="2026-01-01T00:00:00Z")
    out = []
    for i in range(n):
        body = {**resource(Res(f"terraform_data.r[{i}]", "create")), "after": {"input": "x" * 200}}
        rec = records.base_record("resource.changed", run, {"user": "alice"}, resource=body)
        rec["id"], rec["time"] = f"{i:032x}", "2026-01-01T00:00:00Z"
        out.append(rec)
    return out


def test_append_each_writes_exactly_what_append_writes(tmp_path: Path, signer: Any, monkeypatch) -> None:
    monkeypatch.setattr(ledger_mod, "GROUP_BYTES", 4096)  # many groups
    a, b = Ledger(tmp_path / "a.jsonl"), Ledger(tmp_path / "b.jsonl")
    add_run(a.path, signer, time="2026-01-01T00:00:00Z", resources=[Res("a.b", "create")])
    b.path.write_bytes(a.path.read_bytes())
    appended = a.append(_run(300), signer)
    tail = b.append_each(iter(_run(300)), signer)
    assert isinstance(b, EachAppender)
    assert a.path.read_bytes() == b.path.read_bytes()
    assert (tail.seq, tail.digest) == (a.tail().seq, a.tail().digest) == (appended[-1].seq, a.tail().digest)
    assert verify_ledger(b.path, [load_verifier(tmp_path / "k.pub")], jobs=1).ok


def test_a_failure_while_records_are_made_leaves_the_ledger_byte_identical(tmp_path: Path, signer: Any,
                                                                          monkeypatch) -> None:
    monkeypatch.setattr(ledger_mod, "GROUP_BYTES", 4096)
    ledger = Ledger(tmp_path / "l.jsonl")
    add_run(ledger.path, signer, time="2026-01-01T00:00:00Z", resources=[Res("a.b", "create")])
    before = ledger.path.read_bytes()

    def made() -> Iterator[dict[str, Any]]:
        yield from _run(200)  # several groups are on disk by now
        raise RecursionError("a value nested too deep")

    with pytest.raises(RecursionError):
        ledger.append_each(made(), signer)
    assert ledger.path.read_bytes() == before
    assert len(read_lines(ledger.path)) == len(before.splitlines())



class _Certifying:
    """The file key as a signer that certifies batches, as the KMS signer does; counts its signatures."""

    certifies_batches = True

    def __init__(self, inner: Any) -> None:
        self.inner, self.algorithm, self.key_id, self.calls = inner, inner.algorithm, inner.key_id, 0

    def sign(self, payload: bytes) -> bytes:
        self.calls += 1
        return bytes(self.inner.sign(payload))


def test_a_signer_that_certifies_batches_is_called_once_per_batch_not_per_record(tmp_path: Path, signer: Any,
                                                                                monkeypatch) -> None:
    monkeypatch.setattr(ledger_mod, "CERTIFIED_BATCH", 120)
    kms = _Certifying(signer)
    a, b = Ledger(tmp_path / "a.jsonl"), Ledger(tmp_path / "b.jsonl")
    a.append(_run(300), kms)
    assert kms.calls == 1
    b.append_each(iter(_run(300)), kms)
    assert kms.calls == 1 + 3  # batches of 120, 120 and 60
    assert len(read_lines(b.path)) == 300
    assert verify_ledger(b.path, [load_verifier(tmp_path / "k.pub")], jobs=1).ok
