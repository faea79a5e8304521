"""The Merkle tree's right edge: anchoring from a saved frontier gives exactly what hashing the whole
ledger gives (issue 13), and a frontier that no longer fits the ledger is never trusted."""

from __future__ import annotations

import base64
import json
import random
from pathlib import Path

import pytest

from tfaudit.trail import checkpoints as cps, frontier, merkle
from tfaudit.trail.signing import generate_keypair, load_signer, load_verifier
from tfaudit.trail.store import read_lines
from trail_factory import Res, add_run


def _leaves(n: int) -> list[bytes]:
    return [merkle.leaf_hash(b"line %d" % i) for i in range(n)]


def test_extended_tree_matches_the_full_tree_for_every_size_and_proof() -> None:
    rng = random.Random(13)
    cases = [(m, p, n) for n in range(1, 28) for m in range(1, n + 1) for p in range(m, n + 1)]
    cases += [tuple(sorted(rng.sample(range(1, 2000), 3))) for _ in range(40)]  # type: ignore[misc]
    for m, p, n in cases:
        leaves = _leaves(n)
        full = merkle.Tree(leaves)
        ext = frontier.ExtendedTree(frontier.Frontier.of_leaves(leaves[:m]), leaves[m:])
        assert ext.size == n and ext.root() == full.root(), (m, n)
        assert ext.root(p) == full.root(p), (m, p, n)
        assert ext.consistency_proof(p) == full.consistency_proof(p), (m, p, n)
        assert ext.extended_frontier() == frontier.Frontier.of_leaves(leaves), (m, n)
        assert ext.extended_frontier().root() == full.root()


def test_the_frontier_holds_log_n_hashes() -> None:
    f = frontier.Frontier.of_leaves(_leaves(4_099))
    assert len(f.nodes) == bin(4_099).count("1") == 3
    assert len(frontier.spans(1_000_000)) == bin(1_000_000).count("1") <= 20


@pytest.fixture()
def trail(tmp_path: Path):
    priv, pub = generate_keypair(tmp_path / "k")
    signer, verifier = load_signer(priv), load_verifier(pub)
    ledger = tmp_path / "ledger.jsonl"
    store = cps.DirStore(tmp_path / "checkpoints")
    settings = cps.CheckpointSettings(location=str(store.path))
    runs = iter(range(1000))

    def run(n: int = 3) -> None:
        i = next(runs)
        add_run(ledger, signer, time=f"2026-01-01T00:{i % 60:02d}:00Z", resources=[Res(f"a.r{i}", "create")] * n)

    def anchor() -> cps.Checkpoint:
        cp = cps.anchor(ledger, signer, settings, {}).checkpoint
        assert cp is not None
        return cp

    return {"ledger": ledger, "store": store, "verifier": verifier, "run": run, "anchor": anchor,
            "saved": tmp_path / "ledger.jsonl.merkle"}


def _full_root(ledger: Path) -> tuple[int, bytes]:
    lines = read_lines(ledger)
    return len(lines), merkle.Tree.from_data(lines).root()


def test_anchoring_from_the_frontier_equals_the_full_recomputation(trail: dict, monkeypatch) -> None:
    used: list[int] = []
    real = frontier.ExtendedTree.__init__

    def spy(self, f, new):  # type: ignore[no-untyped-def]
        used.append(f.size)
        real(self, f, new)

    monkeypatch.setattr(frontier.ExtendedTree, "__init__", spy)
    trail["run"]()
    first = trail["anchor"]()
    assert used == [] and trail["saved"].exists()  # the first anchor hashes everything, then keeps the edge
    for k in range(6):
        trail["run"](k + 1)
        cp = trail["anchor"]()
        assert (cp.size, cp.root) == _full_root(trail["ledger"])
    assert len(used) == 6 and used[0] == first.size
    report = cps.check_ledger(trail["ledger"], trail["store"], [trail["verifier"]])
    assert report.ok and report.checkpoints == 7, report.problems  # every stored consistency proof verifies


def test_a_frontier_that_does_not_fit_is_not_trusted(trail: dict) -> None:
    trail["run"]()
    trail["anchor"]()
    saved = json.loads(trail["saved"].read_text())
    saved["nodes"] = [base64.b64encode(b"\x00" * 32).decode() for _ in saved["nodes"]]  # wrong hashes, right line
    trail["saved"].write_text(json.dumps(saved))
    trail["run"]()
    cp = trail["anchor"]()
    assert (cp.size, cp.root) == _full_root(trail["ledger"])

    trail["saved"].write_text("not json")
    trail["run"]()
    cp = trail["anchor"]()
    assert (cp.size, cp.root) == _full_root(trail["ledger"])
    assert cps.check_ledger(trail["ledger"], trail["store"], [trail["verifier"]]).ok


def test_rewritten_history_is_still_refused(trail: dict) -> None:
    trail["run"]()
    trail["anchor"]()
    data = trail["ledger"].read_bytes()
    trail["ledger"].write_bytes(data.replace(b'"a.r0"', b'"a.rX"', 1))  # the last line's digest is unchanged...
    trail["saved"].unlink()  # ...but without a frontier the whole ledger is hashed
    trail["run"]()
    with pytest.raises(Exception, match="history was rewritten"):
        cps.anchor(trail["ledger"], load_signer(trail["ledger"].parent / "k"), cps.CheckpointSettings(
            location=str(trail["store"].path)), {})
