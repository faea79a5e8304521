"""Checkpoints: the C2SP signed-note and tlog-checkpoint formats, anchoring, and checking a ledger against them.

The ledger here is a plain file of lines (the tree does not look inside them); the end-to-end
tests with real `tfaudit apply` runs are in test_checkpoint_e2e.py.
"""

from __future__ import annotations

import base64
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import ed25519

from tfaudit.trail import checkpoints as cps
from tfaudit.trail import merkle
from tfaudit.trail import proofs
from tfaudit.trail.checkpoints import Checkpoint, CheckpointProblemKind as K, CheckpointSettings, DirStore
from tfaudit.config import parse_config
from tfaudit.errors import ConfigError, DeliveryError, InputError, VerificationError
from tfaudit.trail.signing import Ed25519Signer, Verifier, generate_keypair, key_id_for, load_signer, load_verifier

DATA = Path(__file__).parents[1] / "data"


def _signer_verifier(tmp_path: Path, name: str = "k") -> tuple[Ed25519Signer, Verifier]:
    priv, pub = generate_keypair(tmp_path / "keys" / name)
    return load_signer(priv), load_verifier(pub)


def _write(ledger: Path, lines: list[bytes]) -> None:
    ledger.write_bytes(b"".join(line + b"\n" for line in lines))


def _lines(n: int, tag: str = "rec") -> list[bytes]:
    return [b'{"seq":%d,"tag":"%s"}' % (i + 1, tag.encode()) for i in range(n)]


# --- the signed note: the Go reference implementation's vector ----------------------------------------
def test_signed_note_matches_the_go_reference_byte_for_byte() -> None:
    v = json.loads((DATA / "c2sp_signed_note_vector.json").read_text())
    seed = base64.b64decode(v["signer_key"].split("+", 4)[4])
    assert seed[0] == 1  # signature type 0x01: Ed25519
    signer = Ed25519Signer.from_private_key(ed25519.Ed25519PrivateKey.from_private_bytes(seed[1:]))
    assert cps.sign_note(v["text"], "PeterNeumann", signer) == v["note"]

    vkey_name, vkey_hash, vkey_b64 = v["verifier_key"].split("+", 2)
    pub_raw = base64.b64decode(vkey_b64)
    pub = ed25519.Ed25519PublicKey.from_public_bytes(pub_raw[1:])
    assert cps.note_key_id(vkey_name, pub).hex() == vkey_hash
    verifier = Verifier(pub, key_id_for(pub), "PeterNeumann")
    text, names = cps.open_note(v["note"].encode(), [verifier])
    assert (text, names) == (v["text"], ["PeterNeumann"])
    with pytest.raises(VerificationError, match="altered"):
        cps.open_note(v["note"].replace("cryptography", "cryptographY").encode(), [verifier])


def test_note_rules(tmp_path: Path) -> None:
    signer, verifier = _signer_verifier(tmp_path)
    other_signer, other = _signer_verifier(tmp_path, "other")
    note = cps.sign_note("hello\n", "example.com/log", signer)
    assert note.startswith("hello\n\n\u2014 example.com/log ")
    # a signature by an unknown key is ignored; a known key's signature decides
    extra = cps.sign_note("hello\n", "witness.example", other_signer).split("\n\n")[1]
    assert cps.open_note((note + extra).encode(), [verifier])[1] == ["example.com/log"]
    with pytest.raises(VerificationError, match="not signed by any"):
        cps.open_note(note.encode(), [other])
    # a known key whose signature fails rejects the whole note, even next to a good one
    raw = bytearray(base64.b64decode(note.split(" ")[-1]))
    raw[-1] ^= 1
    forged = note.rsplit(" ", 1)[0] + " " + base64.b64encode(bytes(raw)).decode() + "\n"
    with pytest.raises(VerificationError, match="altered"):
        cps.open_note((forged + extra).encode(), [verifier, other])
    for bad in [b"hello\n", b"hello\n\n", "hello\x07\n\n".encode() + note.split("\n\n")[1].encode(),
                b"hello\n\n-- example.com/log AAAA\n", b"\xff\n\n" + note.split("\n\n")[1].encode()]:
        with pytest.raises(VerificationError):
            cps.open_note(bad, [verifier])
    with pytest.raises(ConfigError):
        cps.sign_note("hello\n", "has space", signer)
    with pytest.raises(ConfigError):
        cps.sign_note("hello\n", "a+b", signer)


def test_checkpoint_text_is_c2sp_tlog_checkpoint(tmp_path: Path) -> None:
    signer, verifier = _signer_verifier(tmp_path)
    tree = merkle.Tree.from_data(_lines(5))
    cp = Checkpoint("example.com/infra", 5, tree.root())
    note = cp.sign(signer)
    body, sig = note.split("\n\n")
    assert body.split("\n") == ["example.com/infra", "5", base64.b64encode(tree.root()).decode()]
    assert sig.startswith("\u2014 example.com/infra ")
    assert len(base64.b64decode(sig.split(" ")[2])) == 4 + 64  # key hash || Ed25519 signature
    assert cps.open_checkpoint(note.encode(), [verifier]) == cp
    for bad_text in ["o\n05\n" + cp.root_b64 + "\n", "o\n5\nnot-base64\n", "o\n5\n" + base64.b64encode(b"x").decode() + "\n",
                     "o\n5\n", "o\n\n" + cp.root_b64 + "\n"]:
        with pytest.raises(VerificationError):
            Checkpoint.parse(bad_text)


# --- anchoring and checking ---------------------------------------------------------------------------------
@pytest.fixture
def setup(tmp_path: Path) -> dict:
    signer, verifier = _signer_verifier(tmp_path)
    ledger = tmp_path / "ledger.jsonl"
    store = DirStore(tmp_path / "checkpoints")
    settings = CheckpointSettings(location=str(store.path))
    return {"signer": signer, "verifier": verifier, "ledger": ledger, "store": store, "settings": settings,
            "anchor": lambda: cps.anchor(ledger, signer, settings, {}),
            "check": lambda path=ledger: cps.check_ledger(path, store, [verifier])}


def test_anchor_writes_checkpoints_with_consistency_proofs(setup: dict) -> None:
    lines = _lines(3)
    _write(setup["ledger"], lines)
    first = setup["anchor"]().checkpoint
    assert first.size == 3 and first.origin == cps.default_origin(lines[0])
    _write(setup["ledger"], lines + _lines(4, "more"))
    second = setup["anchor"]()
    assert second.checkpoint.size == 7 and second.written == (str(setup["store"].path),)
    proof_name = second.checkpoint.name.replace(".checkpoint", ".consistency.json")
    assert {p.name for p in setup["store"].path.iterdir()} == {first.name, proof_name, second.checkpoint.name}
    proof = json.loads((setup["store"].path / proof_name).read_text())
    merkle.verify_consistency(3, 7, [base64.b64decode(x) for x in proof["hashes"]], first.root, second.checkpoint.root)
    # nothing new: no new checkpoint
    assert setup["anchor"]().checkpoint == second.checkpoint
    assert len(list(setup["store"].path.iterdir())) == 3
    report = setup["check"]()
    assert report.ok and report.checkpoints == 2 and report.latest.size == 7


def test_truncated_ledger_is_reported_and_never_anchored(setup: dict) -> None:
    lines = _lines(4) + _lines(3, "run2")
    _write(setup["ledger"], lines[:4])
    setup["anchor"]()
    _write(setup["ledger"], lines)
    setup["anchor"]()
    _write(setup["ledger"], lines[:4])  # the newest run cut off: the chain alone cannot tell
    report = setup["check"]()
    assert [p.kind for p in report.problems] == [K.TRUNCATED]
    assert "has 4 records but this checkpoint signed 7" in report.problems[0].message
    with pytest.raises(DeliveryError, match="records were removed; no new checkpoint was signed"):
        setup["anchor"]()


def test_rewritten_ledger_is_reported_and_never_anchored(setup: dict) -> None:
    lines = _lines(6)
    _write(setup["ledger"], lines[:3])
    setup["anchor"]()
    _write(setup["ledger"], lines)
    setup["anchor"]()
    rewritten = lines[:2] + [b'{"seq":3,"tag":"forged"}'] + lines[3:]
    _write(setup["ledger"], rewritten)
    report = setup["check"]()
    assert [p.kind for p in report.problems] == [K.REWRITTEN]
    assert "2 of 2 checkpoints differ" in report.problems[0].message
    with pytest.raises(DeliveryError, match="history was rewritten"):
        setup["anchor"]()
    # rewritten AND longer than before: still caught
    _write(setup["ledger"], rewritten + _lines(5, "later"))
    assert [p.kind for p in setup["check"]().problems] == [K.REWRITTEN]
    # the destination cannot be read (gone, or a write-only role): the copy beside the ledger still refuses
    shutil.rmtree(setup["store"].path)
    with pytest.raises(DeliveryError, match="history was rewritten"):
        setup["anchor"]()
    assert not setup["store"].path.exists()


def test_fork_between_checkpoints_is_reported(setup: dict, tmp_path: Path) -> None:
    _write(setup["ledger"], _lines(5))
    setup["anchor"]()
    # someone with the key signs a checkpoint of another history and stores it (the proof does not help them)
    other = _lines(9, "other")
    other_tree = merkle.Tree.from_data(other)
    forged = Checkpoint(cps.default_origin(_lines(5)[0]), 9, other_tree.root())
    setup["store"].store(forged, forged.sign(setup["signer"]),
                         {"from_size": 5, "from_root": base64.b64encode(merkle.Tree.from_data(_lines(5)).root()).decode(),
                          "hashes": [base64.b64encode(h).decode() for h in other_tree.consistency_proof(5)]})
    report = setup["check"]()
    kinds = [p.kind for p in report.problems]
    assert K.FORK in kinds and K.TRUNCATED in kinds
    assert "does not extend" in next(p for p in report.problems if p.kind is K.FORK).message
    # two roots for one size
    _write(setup["ledger"], _lines(5))
    same_size = Checkpoint(forged.origin, 5, merkle.Tree.from_data(_lines(5, "x")).root())
    setup["store"].store(same_size, same_size.sign(setup["signer"]), None)
    assert any(p.kind is K.FORK and "two different roots" in p.message for p in setup["check"]().problems)


def test_tampered_foreign_and_missing_checkpoints(setup: dict, tmp_path: Path) -> None:
    _write(setup["ledger"], _lines(3))
    with pytest.raises(InputError, match="does not exist"):
        setup["check"]()
    setup["store"].path.mkdir()
    assert [p.kind for p in setup["check"]().problems] == [K.NONE_FOUND]
    cp = setup["anchor"]().checkpoint
    path = setup["store"].path / cp.name
    path.write_text(path.read_text().replace("\n3\n", "\n2\n"))  # edit the signed size
    assert [p.kind for p in setup["check"]().problems] == [K.BAD_CHECKPOINT, K.NONE_FOUND]
    path.unlink()
    stranger, _ = _signer_verifier(tmp_path, "stranger")
    cps.anchor(setup["ledger"], stranger, setup["settings"], {})
    report = setup["check"]()
    assert [p.kind for p in report.problems] == [K.BAD_CHECKPOINT, K.NONE_FOUND]
    assert "not signed by any of the given public keys" in report.problems[0].message


def test_anchor_after_run_warns_or_fails(setup: dict, tmp_path: Path) -> None:
    from tfaudit.config import Config

    _write(setup["ledger"], _lines(4))
    cfg_path = tmp_path / ".tfaudit.hcl"
    cfg_path.write_text('checkpoints {\n  on_failure = "fail"\n  destination "dir" { path = "cps" }\n}\n')
    cfg = parse_config(cfg_path)
    messages: list[str] = []
    assert cps.anchor_after_run(setup["ledger"], setup["signer"], None, {}, cfg, messages.append) == 0
    assert (tmp_path / "cps").is_dir() and not messages
    _write(setup["ledger"], _lines(2))
    assert cps.anchor_after_run(setup["ledger"], setup["signer"], None, {}, cfg, messages.append) == 4
    assert messages and messages[0].startswith("tfaudit: error: checkpoint: the ledger has 2 records")
    messages.clear()
    # not configured: nothing happens; --checkpoints / TFAUDIT_CHECKPOINTS default to warn
    assert cps.anchor_after_run(setup["ledger"], setup["signer"], None, {}, Config(), messages.append) == 0
    blocked = tmp_path / "file-not-dir"
    blocked.write_text("")
    assert cps.anchor_after_run(setup["ledger"], setup["signer"], None, {"TFAUDIT_CHECKPOINTS": str(blocked / "x")},
                                Config(), messages.append) == 0
    assert messages and messages[0].startswith("tfaudit: warning: checkpoint: ")


def test_checkpoints_config_block(tmp_path: Path) -> None:
    cfg = tmp_path / ".tfaudit.hcl"
    cfg.write_text('checkpoints {\n  origin = "example.com/infra-prod"\n'
                   '  destination "dir" { path = "anchors" }\n'
                   '  destination "s3" {\n    bucket = "audit"\n    prefix = "prod"\n    retain_days = 30\n  }\n'
                   '  destination "webhook" { url = "https://anchor.example.com/cp" }\n}\n')
    settings = parse_config(cfg).section("checkpoints")
    assert settings.origin == "example.com/infra-prod" and settings.on_failure.value == "warn"
    stores = settings.stores({})
    assert [type(s).__name__ for s in stores] == ["DirStore", "S3Store", "WebhookStore"]
    assert stores[0].path == tmp_path / "anchors" and stores[1].prefix == "prod/" and stores[1].retain_days == 30
    for body, message in [
        ('checkpoints {\n  destination "tape" { path = "x" }\n}\n', "unknown destination kind"),
        ('checkpoints {\n  destination "dir" { where = "x" }\n}\n', "unknown key 'where'"),
        ('checkpoints {\n  on_failure = "ignore"\n  destination "dir" { path = "x" }\n}\n', "on_failure"),
        ('checkpoints {\n  origin = "has space"\n  destination "dir" { path = "x" }\n}\n', "origin"),
        ('checkpoints {\n}\n', "at least one destination"),
        ('checkpoints {\n  destination "webhook" { url = "http://example.com/x" }\n}\n', "plain http"),
        ('checkpoints {\n  destination "s3" { bucket = "b"\n mode = "LOOSE" }\n}\n', "mode"),
    ]:
        cfg.write_text(body)
        with pytest.raises(ConfigError, match=message):
            parse_config(cfg)


# --- proof files ---------------------------------------------------------------------------------------
def _records(tmp_path: Path, signer: Ed25519Signer, n: int) -> list[bytes]:
    """n real, signed, chained ledger lines (the record content is minimal but schema-valid)."""
    from tfaudit import records
    from tfaudit.trail.ledger import Ledger

    run = records.RunInfo(id=records.RunId(records.new_id()), command="apply", args=(), tool="terraform",
                          tool_version="1.11.4", workspace="default", working_dir=str(tmp_path))
    actor = {"user": "alice", "os_user": "alice", "hostname": "h", "git": None, "ci": None}
    led = Ledger(tmp_path / "real.jsonl")
    empty = {"sha256": None, "summary": {}, "changes": [], "resource_drift": []}
    for _ in range(n):
        led.append([records.base_record("plan.recorded", run, actor, plan=empty)], signer)
    return cps.read_lines(led.path)


def test_inclusion_and_consistency_proof_files(tmp_path: Path) -> None:
    signer, verifier = _signer_verifier(tmp_path)
    _, stranger = _signer_verifier(tmp_path, "stranger")
    lines = _records(tmp_path, signer, 11)
    tree = merkle.Tree.from_data(lines)
    note = Checkpoint("example.com/l", 11, tree.root()).sign(signer)
    doc = proofs.inclusion_proof(lines, 5, 11, note)
    assert proofs.verify_proof(doc, [verifier]).authenticated
    assert not proofs.verify_proof(doc, []).authenticated
    with pytest.raises(VerificationError):
        proofs.verify_proof(doc, [stranger])
    for key, value in [("tree_size", 12), ("tree_size", 10), ("leaf_index", 5), ("leaf_index", 3),
                       ("record", lines[5].decode()), ("record", lines[4].decode().replace("alice", "mallory"))]:
        with pytest.raises(VerificationError):
            proofs.verify_proof({**doc, key: value}, [verifier])
    with pytest.raises(VerificationError, match="no signed checkpoint"):
        proofs.verify_proof({**doc, "checkpoint": None}, [verifier])

    n1 = Checkpoint("example.com/l", 4, tree.root(4)).sign(signer)
    cdoc = proofs.consistency_proof(lines, 4, 11, (n1, note))
    assert proofs.verify_proof(cdoc, [verifier]).authenticated
    for key, value in [("size1", 5), ("size2", 12), ("root1", doc["root"]), ("checkpoints", [note, n1])]:
        with pytest.raises(VerificationError):
            proofs.verify_proof({**cdoc, key: value}, [verifier])
    with pytest.raises(InputError):
        proofs.verify_proof({"format": "something else"}, [verifier])


def test_checkpoints_module_does_not_import_boto3() -> None:
    code = ("import sys, tfaudit.trail.checkpoints, tfaudit.trail.proofs, tfaudit.run.apply; "
            "assert 'boto3' not in sys.modules and 'botocore' not in sys.modules, 'boto3 imported'")
    subprocess.run([sys.executable, "-c", code], check=True)
