"""The ledger and verify, without terraform: chain, signatures, locking, and every tamper case."""

from __future__ import annotations

import base64
import json
import multiprocessing
import stat
from pathlib import Path
from typing import Any

import pytest

from tfaudit import records
from tfaudit.errors import LedgerError, SigningKeyError
from tfaudit.trail.ledger import Ledger
from tfaudit.trail.signing import generate_keypair, load_signer, load_verifier
from tfaudit.trail.verify import ProblemKind, verify_ledger


def _run_records(n_resources: int = 2, status: str = "succeeded") -> list[dict[str, Any]]:
    run = records.RunInfo(id=records.RunId(records.new_id()), command="apply", args=("-auto-approve",),
                          tool="terraform", tool_version="1.11.4", workspace="default", working_dir="/w",
                          plan_sha256="0" * 64)
    actor = {"user": "alice"}
    out = [records.base_record("run.started", run, actor, plan={"summary": {"create": n_resources}, "changes": []})]
    for i in range(n_resources):
        out.append(records.base_record("resource.changed", run, actor, resource={
            "address": f"terraform_data.r{i}", "module": None, "type": "terraform_data", "name": f"r{i}",
            "index": None, "provider": "terraform.io/builtin/terraform", "actions": ["create"],
            "action_reason": None, "status": status, "error": None if status != "failed" else
            {"summary": "boom", "detail": "it broke"}, "changed_paths": ["input"], "before": None,
            "after": {"input": i}}))
    out.append(records.base_record("run.finished", run, actor, outcome=records.outcome_body(
        status=status, exit_code=0 if status == "succeeded" else 1,
        counts={status: n_resources}, state_before=None, state_after=None)))
    return out


@pytest.fixture
def signed_ledger(tmp_path: Path, keypair: tuple[Path, Path]) -> tuple[Path, Path]:
    priv, pub = keypair
    ledger = Ledger(tmp_path / "ledger.jsonl")
    signer = load_signer(priv)
    ledger.append(_run_records(2), signer)
    ledger.append(_run_records(1, status="failed"), signer)
    return ledger.path, pub


def _verify(path: Path, pub: Path) -> set[ProblemKind]:
    return {p.kind for p in verify_ledger(path, [load_verifier(pub)]).problems}


def _lines(path: Path) -> list[bytes]:
    return path.read_bytes().splitlines(keepends=True)


def test_clean_ledger_verifies_with_chain_and_seq(signed_ledger: tuple[Path, Path]) -> None:
    path, pub = signed_ledger
    report = verify_ledger(path, [load_verifier(pub)])
    assert report.ok, report.problems
    recs = [json.loads(x) for x in _lines(path)]
    assert [r["chain"]["seq"] for r in recs] == list(range(1, 8))
    assert recs[0]["chain"]["prev"] is None
    assert all(r["signature"]["alg"] == "ed25519" for r in recs)
    assert report.runs == 2 and report.records == 7


def test_edited_status_is_caught(signed_ledger: tuple[Path, Path]) -> None:
    path, pub = signed_ledger
    lines = _lines(path)
    idx = next(i for i, ln in enumerate(lines) if b'"status":"failed"' in ln and b"resource.changed" in ln)
    lines[idx] = lines[idx].replace(b'"status":"failed"', b'"status":"succeeded"')
    path.write_bytes(b"".join(lines))
    kinds = _verify(path, pub)
    assert ProblemKind.BAD_SIGNATURE in kinds
    # the next line's prev digest no longer matches either
    assert ProblemKind.PREV in kinds


@pytest.mark.parametrize("case", ["deleted", "swapped", "duplicated", "removed_finish", "torn", "sig_byte"])
def test_tampering_is_caught(signed_ledger: tuple[Path, Path], case: str) -> None:
    path, pub = signed_ledger
    lines = _lines(path)
    if case == "deleted":
        del lines[2]
        expect = {ProblemKind.SEQ, ProblemKind.PREV}
    elif case == "swapped":
        lines[1], lines[2] = lines[2], lines[1]
        expect = {ProblemKind.SEQ, ProblemKind.PREV}
    elif case == "duplicated":
        lines.insert(3, lines[2])
        expect = {ProblemKind.SEQ, ProblemKind.DUPLICATE}
    elif case == "removed_finish":
        assert b"run.finished" in lines[-1]
        lines = lines[:-1]
        expect = {ProblemKind.UNFINISHED_RUN}
    elif case == "torn":
        lines[-1] = lines[-1][: len(lines[-1]) // 2]
        expect = {ProblemKind.TORN}
    else:
        rec = json.loads(lines[3])
        sig = bytearray(base64.b64decode(rec["signature"]["value"]))
        sig[5] ^= 0x01
        new = base64.b64encode(bytes(sig)).decode()
        lines[3] = lines[3].replace(rec["signature"]["value"].encode(), new.encode())
        expect = {ProblemKind.BAD_SIGNATURE}
    path.write_bytes(b"".join(lines))
    report = verify_ledger(path, [load_verifier(pub)])
    assert not report.ok
    assert expect <= {p.kind for p in report.problems}
    assert all(p.line is None or 1 <= p.line <= len(lines) for p in report.problems)


def test_other_public_key_is_rejected(signed_ledger: tuple[Path, Path], tmp_path: Path) -> None:
    path, _ = signed_ledger
    _, other_pub = generate_keypair(tmp_path / "other")
    report = verify_ledger(path, [load_verifier(other_pub)])
    assert not report.ok
    assert {p.kind for p in report.problems} == {ProblemKind.UNKNOWN_KEY}
    assert len(report.problems) == 7  # every line reported, verification keeps going


def test_forged_key_id_still_fails_signature(signed_ledger: tuple[Path, Path], tmp_path: Path) -> None:
    path, _ = signed_ledger
    _, other_pub = generate_keypair(tmp_path / "other")
    other_id = load_verifier(other_pub).key_id
    lines = _lines(path)
    old_id = json.loads(lines[0])["signature"]["key_id"]
    path.write_bytes(b"".join(ln.replace(old_id.encode(), other_id.encode()) for ln in lines))
    assert ProblemKind.BAD_SIGNATURE in _verify(path, other_pub)


def test_append_refuses_torn_tail_and_keeps_ledger(signed_ledger: tuple[Path, Path], keypair: tuple[Path, Path]) -> None:
    path, _ = signed_ledger
    damaged = path.read_bytes()[:-10]
    path.write_bytes(damaged)
    with pytest.raises(LedgerError, match="incomplete line"):
        Ledger(path).append(_run_records(1), load_signer(keypair[0]))
    assert path.read_bytes() == damaged


def test_unwritable_ledger_is_a_clear_error(tmp_path: Path) -> None:
    # a parent that is a file cannot hold a ledger, whoever runs the test (root included)
    (tmp_path / "not-a-dir").write_text("x")
    with pytest.raises(LedgerError, match="cannot write the ledger .*: Not a directory"):
        Ledger(tmp_path / "not-a-dir" / "ledger.jsonl").check_writable()


def test_ledger_path_that_is_a_directory_is_refused(tmp_path: Path) -> None:
    (tmp_path / "dir.jsonl").mkdir()
    with pytest.raises(LedgerError, match="cannot write the ledger"):
        Ledger(tmp_path / "dir.jsonl").check_writable()


def test_key_readable_by_others_is_refused(tmp_path: Path) -> None:
    priv, _ = generate_keypair(tmp_path / "k")
    assert stat.S_IMODE(priv.stat().st_mode) == 0o600
    priv.chmod(0o644)
    with pytest.raises(SigningKeyError, match="chmod 600"):
        load_signer(priv)


def test_missing_key_names_the_fix(tmp_path: Path) -> None:
    with pytest.raises(SigningKeyError, match="tfaudit keygen"):
        load_signer(tmp_path / "nope")


def _append_worker(args: tuple[str, str, int]) -> None:
    path, key, n = args
    ledger, signer = Ledger(Path(path)), load_signer(Path(key))
    for _ in range(n):
        ledger.append(_run_records(2), signer)


def test_concurrent_appends_never_fork_the_chain(tmp_path: Path, keypair: tuple[Path, Path]) -> None:
    priv, pub = keypair
    path = tmp_path / "ledger.jsonl"
    with multiprocessing.get_context("spawn").Pool(8) as pool:
        pool.map(_append_worker, [(str(path), str(priv), 5)] * 8)
    report = verify_ledger(path, [load_verifier(pub)])
    assert report.ok, report.problems[:3]
    assert report.records == 8 * 5 * 4
