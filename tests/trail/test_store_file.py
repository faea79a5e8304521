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
