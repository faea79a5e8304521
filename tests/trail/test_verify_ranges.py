"""Verify in parallel: workers read their own byte ranges of the ledger, and the report is the
one a single process reading from the start gives, line numbers and all, whatever lines were
damaged at, just before or just after the seams between ranges."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from trail_factory import Res, add_run  # noqa: E402

from tfaudit.trail.ledger import Ledger  # noqa: E402
from tfaudit.trail.signing import Verifier, generate_keypair, load_signer, load_verifier  # noqa: E402
from tfaudit.trail.verify import Report, verify_ledger  # noqa: E402
from tfaudit.trail.workers import RANGES_PER_JOB, ranges_of  # noqa: E402

JOBS = 2


@pytest.fixture(scope="module")
def signed(tmp_path_factory: pytest.TempPathFactory) -> tuple[bytes, Verifier]:
    d = tmp_path_factory.mktemp("ranges")
    priv, pub = generate_keypair(d / "key")
    signer = load_signer(priv)
    path = d / "ledger.jsonl"
    for i in range(30):
        add_run(path, signer, time=f"2026-01-02T03:04:{i:02d}Z", workspace=f"ws{i % 3}",
                resources=[Res(f"terraform_data.r{j}") for j in range(8)])
    return path.read_bytes(), load_verifier(pub)


def _seams(path: Path) -> list[int]:
    """The line indexes (0-based) that start a worker's range, after the first."""
    view = Ledger(path).snapshot()
    ranges = ranges_of(view, JOBS)
    assert ranges is not None and len(ranges) == JOBS * RANGES_PER_JOB
    data = path.read_bytes()
    assert ranges[0][0] == 0 and ranges[-1][1] == len(data)
    assert all(a == b for (_, a), (b, _) in zip(ranges, ranges[1:]))  # contiguous, in order
    assert all(data[start - 1:start] == b"\n" for start, _ in ranges[1:])  # each starts a line
    return [data.count(b"\n", 0, start) for start, _ in ranges[1:]]


def _bump_seq(line: bytes) -> bytes:
    """The same line with chain.seq one higher (same length unless the seq gains a digit)."""
    return re.sub(rb'"seq":([0-9]+)\}', lambda m: b'"seq":%d}' % (int(m.group(1)) + 1), line, count=1)


def _flip_signature(line: bytes) -> bytes:
    at = line.index(b'"value":"') + len(b'"value":"') + 3
    return line[:at] + (b"B" if line[at:at + 1] != b"B" else b"C") + line[at + 1:]


def _both(path: Path, verifiers: list[Verifier], **kw: bool) -> tuple[Report, Report]:
    serial = verify_ledger(path, verifiers, jobs=1, **kw)
    parallel = verify_ledger(path, verifiers, jobs=JOBS, **kw)
    assert parallel.as_dict() == serial.as_dict()
    assert parallel.problems == serial.problems  # messages and order too
    return serial, parallel


def test_a_clean_ledger_reads_the_same_in_ranges(signed: tuple[bytes, Verifier], tmp_path: Path) -> None:
    data, verifier = signed
    path = tmp_path / "ledger.jsonl"
    path.write_bytes(data)
    _seams(path)
    for kw in ({}, {"chain_only": True}, {"signatures": False}):
        serial, parallel = _both(path, [verifier], **kw)
        assert parallel.ok and parallel.records == 300 and parallel.last_seq == 300


def test_damage_at_and_around_every_seam_is_reported_as_one_process_reports_it(
        signed: tuple[bytes, Verifier], tmp_path: Path) -> None:
    data, verifier = signed
    path = tmp_path / "ledger.jsonl"
    path.write_bytes(data)
    seams = _seams(path)
    lines = data.splitlines(keepends=True)
    damaged: dict[int, str] = {}
    for i, k in enumerate(seams):  # every edit keeps the line's length, so the seams stay put
        if i % 3 == 0:  # the range's first line: its signature byte changed
            lines[k] = _flip_signature(lines[k])
            damaged[k + 1] = "bad_signature"
        elif i % 3 == 1:  # the line before the seam: its seq bumped (the range's first line is then off by one)
            lines[k - 1] = _bump_seq(lines[k - 1])
            damaged[k] = damaged[k + 1] = "sequence"
        else:  # the line before the seam: not JSON at all (the range's first line's prev then fails)
            lines[k - 1] = b"{" + b"x" * (len(lines[k - 1]) - 3) + b"}\n"
            damaged[k] = "not_json"
            damaged[k + 1] = "prev_digest"
    path.write_bytes(b"".join(lines))
    assert _seams(path) == seams
    serial, parallel = _both(path, [verifier])
    found = {(p.line, p.kind.value) for p in parallel.problems}
    assert set(damaged.items()) <= found, sorted(set(damaged.items()) - found)
    serial, parallel = _both(path, [verifier], chain_only=True)
    chained = {(p.line, p.kind.value) for p in parallel.problems}
    assert {(n, kind) for n, kind in damaged.items() if kind != "bad_signature"} <= chained
    assert [p.line for p in parallel.problems] == sorted(p.line or 0 for p in parallel.problems)


@pytest.mark.parametrize("case", ["swap_across_seam", "drop_first_of_range", "garbage_range", "torn_tail",
                                  "blank_lines"])
def test_chain_only_ranges_join_as_one_fold(signed: tuple[bytes, Verifier], tmp_path: Path, case: str) -> None:
    data, verifier = signed
    path = tmp_path / "ledger.jsonl"
    path.write_bytes(data)
    k = _seams(path)[2]
    lines = data.splitlines(keepends=True)
    if case == "swap_across_seam":
        lines[k - 1], lines[k] = lines[k], lines[k - 1]
    elif case == "drop_first_of_range":
        del lines[k]
    elif case == "garbage_range":  # a whole stretch of non-records, longer than a range
        lines[k - 20:k + 60] = [b"not json\n"] * 80
    elif case == "torn_tail":
        lines[-1] = lines[-1][:-40]
    else:
        lines[k:k] = [b"\n"] * 3
    path.write_bytes(b"".join(lines))
    serial, parallel = _both(path, [verifier], chain_only=True)
    assert not parallel.ok
    _both(path, [verifier])


def test_an_empty_or_tiny_ledger_in_ranges(signed: tuple[bytes, Verifier], tmp_path: Path) -> None:
    data, verifier = signed
    path = tmp_path / "ledger.jsonl"
    path.write_bytes(b"")
    serial, parallel = _both(path, [verifier], chain_only=True)
    assert [p.kind.value for p in parallel.problems] == ["empty"]
    path.write_bytes(data.splitlines(keepends=True)[0])  # one line: fewer lines than ranges asked for
    _both(path, [verifier], chain_only=True)
    _both(path, [verifier])


def test_a_repair_record_in_a_later_range_is_checked_at_its_line(tmp_path: Path) -> None:
    from tfaudit.trail.repair import repair_ledger
    from tfaudit.trail.store import open_store

    priv, pub = generate_keypair(tmp_path / "key")
    signer = load_signer(priv)
    path = tmp_path / "l.jsonl"
    for i in range(20):
        add_run(path, signer, time=f"2026-01-02T03:04:{i:02d}Z", resources=[Res(f"terraform_data.r{j}") for j in range(8)])
    path.write_bytes(path.read_bytes() + b'{"schema":"tfaudit.record/v1","id":"0123')  # a torn tail
    done = repair_ledger(open_store(path), signer, {"user": "alice"}, tmp_path)
    assert done is not None
    for i in range(5):  # the repair record is then well inside the ledger, in a later range
        add_run(path, signer, time=f"2026-01-03T03:04:{i:02d}Z", resources=[Res("terraform_data.a")])
    verifier = load_verifier(pub)
    serial, parallel = _both(path, [verifier])
    assert parallel.ok and len(parallel.repairs) == 1
    done.torn.quarantine.unlink()
    serial, parallel = _both(path, [verifier])
    assert [(p.line, p.kind.value) for p in parallel.problems] == [(done.seq, "repair")]
