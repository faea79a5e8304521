"""Signature version 3: a batch key certified by one signature of the configured (KMS) key.

A local ECDSA P-256 key stands in for AWS KMS here (same algorithm, key id and kms_key); the
moto server and real terraform are in tests/trail/test_kms_batches.py. Through the CLI entry
point (in-process), on real ledgers, checking what `tfaudit verify` tells the user.
"""

from __future__ import annotations

import base64
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from conftest import Cli  # noqa: E402
from trail_factory import Res, add_run, edit_line, ledger_lines  # noqa: E402

from tfaudit.trail import certsig  # noqa: E402
from tfaudit.trail.recordsig import SignatureProblem, verify_record  # noqa: E402
from tfaudit.trail.signing import ECDSA_P256_SHA256, Verifier, canonical, key_id_for, signer_key_id  # noqa: E402


class _KmsLike:
    """An ECDSA P-256 signer that certifies batches, as the KMS signer does; counts its signatures."""

    algorithm = ECDSA_P256_SHA256
    certifies_batches = True

    def __init__(self, arn: str = "arn:aws:kms:us-east-1:111122223333:key/abc") -> None:
        self.key = ec.generate_private_key(ec.SECP256R1())
        self.key_id = key_id_for(self.key.public_key())
        self.kms_key = arn
        self.calls = 0

    @property
    def public_key(self) -> ec.EllipticCurvePublicKey:  # as the KMS signer holds the fetched public key
        return self.key.public_key()

    def sign(self, payload: bytes) -> bytes:
        self.calls += 1
        return self.key.sign(payload, ec.ECDSA(hashes.SHA256()))

    def write_pub(self, path: Path) -> Path:
        path.write_bytes(self.key.public_key().public_bytes(serialization.Encoding.PEM,
                                                            serialization.PublicFormat.SubjectPublicKeyInfo))
        return path


@pytest.fixture
def kms() -> _KmsLike:
    return _KmsLike()


@pytest.fixture
def ledger(tmp_path: Path, kms: _KmsLike) -> tuple[Path, Path]:
    path = tmp_path / "ledger.jsonl"
    add_run(path, kms, time="2026-01-02T03:04:05Z", resources=[Res(f"terraform_data.r{i}") for i in range(40)])  # type: ignore[arg-type]
    add_run(path, kms, time="2026-01-03T03:04:05Z", resources=[Res("terraform_data.a")])  # type: ignore[arg-type]
    return path, kms.write_pub(tmp_path / "kms.pub")


def test_one_certifying_signature_per_append_and_the_ledger_verifies(ledger: tuple[Path, Path], kms: _KmsLike,
                                                                       cli: Cli) -> None:
    path, pub = ledger
    assert kms.calls == 2  # two appends (42 and 3 records): one certificate each
    rc, out, _ = cli("verify", str(path), "--public-key", str(pub), "--format", "json")
    report = json.loads(out)
    assert rc == 0 and report["ok"] and report["records"] == 45, out
    assert report["key_ids"] == [kms.key_id]  # the KMS key, not the batch keys
    recs = [json.loads(raw) for raw in ledger_lines(path)]
    sigs = [r["signature"] for r in recs]
    assert {s["v"] for s in sigs} == {3} and {s["alg"] for s in sigs} == {"ed25519"}
    certs = {json.dumps(s["cert"], sort_keys=True) for s in sigs}
    assert len(certs) == 2 and len({s["key_id"] for s in sigs}) == 2
    first = sigs[0]["cert"]
    assert (first["first_seq"], first["last_seq"], first["prev"]) == (1, 42, None)
    assert first["kms_key"] == kms.kms_key and first["key_id"] == kms.key_id and signer_key_id(sigs[0]) == kms.key_id


def test_each_record_verifies_alone(ledger: tuple[Path, Path], kms: _KmsLike) -> None:
    path, _ = ledger
    trusted = {kms.key_id: Verifier(kms.key.public_key(), kms.key_id, "kms.pub")}
    line = ledger_lines(path)[20].rstrip(b"\n")
    verifier, from_line = verify_record(json.loads(line), trusted, line)
    assert verifier.key_id == kms.key_id and from_line
    verifier, _ = verify_record(json.loads(line), trusted)  # without the line: the canonical form
    assert verifier.key_id == kms.key_id


def test_a_tampered_certificate_is_a_bad_signature_on_its_line(ledger: tuple[Path, Path], cli: Cli) -> None:
    path, pub = ledger
    edit_line(path, 5, lambda r: r["signature"]["cert"].update(kms_key="arn:aws:kms:us-east-1:1:key/other"))
    rc, out, _ = cli("verify", str(path), "--public-key", str(pub))
    assert rc == 1 and f"{path}:5: " in out and "certificate signature does not match" in out, out
    assert "bad_signature" in out


def test_a_certificate_made_by_another_key_is_refused(ledger: tuple[Path, Path], tmp_path: Path, cli: Cli) -> None:
    path, pub = ledger
    other = _KmsLike()
    other_ledger = tmp_path / "other.jsonl"
    add_run(other_ledger, other, time="2026-01-02T03:04:05Z", resources=[Res("terraform_data.a")])  # type: ignore[arg-type]
    rc, out, _ = cli("verify", str(other_ledger), "--public-key", str(pub))
    assert rc == 1 and f"{other_ledger}:1: " in out and "unknown_key" in out, out
    assert f"certificate is signed by key {other.key_id}, which is not among the given public keys" in out
    # the same certificate claiming the trusted key's id: its signature does not verify with that key
    trusted_id = json.loads(ledger_lines(path)[0])["signature"]["cert"]["key_id"]
    edit_line(other_ledger, 1, lambda r: r["signature"]["cert"].update(key_id=trusted_id))
    rc, out, _ = cli("verify", str(other_ledger), "--public-key", str(pub))
    assert rc == 1 and f"{other_ledger}:1: " in out and "certificate signature does not match" in out, out


def test_a_record_signed_by_a_key_the_certificate_does_not_certify_is_refused(ledger: tuple[Path, Path],
                                                                              cli: Cli) -> None:
    path, pub = ledger
    lines = ledger_lines(path)
    rec = json.loads(lines[9])
    rogue = certsig.issue(_KmsLike(), 1, 42, None)  # a valid Ed25519 key, certified by nobody we trust
    body = {k: v for k, v in rec.items() if k != "signature"}
    head = {**rec["signature"], "key_id": rogue.key_id}
    del head["value"]
    value = base64.b64encode(rogue.sign(canonical({**body, "signature": head}))).decode()
    lines[9] = canonical({**body, "signature": {**head, "value": value}}) + b"\n"
    path.write_bytes(b"".join(lines))
    rc, out, _ = cli("verify", str(path), "--public-key", str(pub))
    assert rc == 1 and f"{path}:10: " in out and "which its certificate does not certify" in out, out


def test_a_leaked_batch_key_cannot_sign_outside_its_batch(kms: _KmsLike, tmp_path: Path, cli: Cli) -> None:
    path = tmp_path / "ledger.jsonl"
    pub = kms.write_pub(tmp_path / "kms.pub")
    add_run(path, kms, time="2026-01-02T03:04:05Z", resources=[Res("terraform_data.a")])  # type: ignore[arg-type]
    leaked = certsig.issue(kms, 1, 3, None)  # as the first batch's key (seqs 1..3) would be certified
    add_run(path, leaked, time="2026-01-03T03:04:05Z", resources=[Res("terraform_data.b")])  # seqs 4..6
    rc, out, _ = cli("verify", str(path), "--public-key", str(pub))
    assert rc == 1 and f"{path}:4: " in out and "chain.seq 4 is outside the seqs 1..3 its certificate binds" in out
    assert f"{path}:3: " not in out  # the genuine batch still verifies
    # the right positions on another chain (another ledger): the first record's chain.prev is bound
    elsewhere = tmp_path / "elsewhere.jsonl"
    add_run(elsewhere, kms, time="2026-01-02T03:04:05Z", resources=[Res("terraform_data.a")])  # type: ignore[arg-type]
    moved = certsig.issue(kms, 4, 6, "sha256:" + "0" * 64)
    add_run(elsewhere, moved, time="2026-01-03T03:04:05Z", resources=[Res("terraform_data.b")])
    rc, out, _ = cli("verify", str(elsewhere), "--public-key", str(pub))
    assert rc == 1 and f"{elsewhere}:4: " in out and "chain.prev differs from the one its certificate binds" in out


def _flip_spare_bit(text: str) -> str:
    """The same bytes in another base64 spelling: the last character before the padding holds spare bits."""
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
    pad = len(text) - len(text.rstrip("="))
    i = len(text) - pad - 1
    changed = text[:i] + alphabet[alphabet.index(text[i]) ^ 1] + text[i + 1:]
    assert pad and base64.b64decode(changed) == base64.b64decode(text)
    return changed


@pytest.mark.parametrize("case, edit, message", [
    ("unknown cert member", lambda c: c.update(note="hi"), "unknown member(s) note in signature.cert"),
    ("cert member removed", lambda c: c.pop("prev"), "signature.cert lacks prev"),
    ("cert version", lambda c: c.update(v=4), "not a version-3 batch-key certificate"),
    ("cert purpose", lambda c: c.update(purpose="x"), "not a version-3 batch-key certificate"),
    ("seq range", lambda c: c.update(first_seq=0), "not a range of positions"),
    ("seq range reversed", lambda c: c.update(last_seq=0), "not a range of positions"),
    ("pub padding bits", lambda c: c.update(pub=_flip_spare_bit(c["pub"])), "certificate pub is not canonical base64"),
    ("value padding bits", lambda c: c.update(value=_flip_spare_bit(c["value"])),
     "certificate value is not canonical base64"),
])
def test_every_member_of_the_certificate_is_known_and_checked(ledger: tuple[Path, Path], cli: Cli, case: str,
                                                              edit: Callable[[dict[str, Any]], None],
                                                              message: str) -> None:
    path, pub = ledger
    edit_line(path, 2, lambda r: edit(r["signature"]["cert"]))
    rc, out, _ = cli("verify", str(path), "--public-key", str(pub))
    assert rc == 1 and f"{path}:2: " in out and message in out, (case, out)


def test_a_version_3_signature_holds_exactly_its_members(ledger: tuple[Path, Path], cli: Cli) -> None:
    path, pub = ledger
    edit_line(path, 3, lambda r: r["signature"].update(kms_key="arn:x"))
    edit_line(path, 4, lambda r: r["signature"].pop("cert"))
    edit_line(path, 5, lambda r: r["signature"].update(alg="ecdsa-p256-sha256"))
    rc, out, _ = cli("verify", str(path), "--public-key", str(pub))
    assert rc == 1, out
    assert f"{path}:3: " in out and "unknown member(s) kms_key in signature" in out
    assert f"{path}:4: " in out and "version-3 signature lacks cert" in out
    assert f"{path}:5: " in out and "signature.alg is 'ecdsa-p256-sha256'" in out


def test_version_2_records_of_the_same_key_still_verify_beside_version_3(tmp_path: Path, kms: _KmsLike,
                                                                         cli: Cli) -> None:
    path = tmp_path / "ledger.jsonl"

    class PerRecord(_KmsLike):  # the KMS signer before version 3: one signature per record
        certifies_batches = False

    old = PerRecord()
    old.key, old.key_id = kms.key, kms.key_id
    add_run(path, old, time="2026-01-02T03:04:05Z", resources=[Res("terraform_data.a")])  # type: ignore[arg-type]
    add_run(path, kms, time="2026-01-03T03:04:05Z", resources=[Res("terraform_data.a")])  # type: ignore[arg-type]
    assert [json.loads(x)["signature"]["v"] for x in ledger_lines(path)] == [2, 2, 2, 3, 3, 3]
    rc, out, _ = cli("verify", str(path), "--public-key", str(kms.write_pub(tmp_path / "kms.pub")))
    assert rc == 0 and "OK: 6 records in 2 runs" in out, out


def test_the_batch_key_stays_in_memory(kms: _KmsLike, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from cryptography.hazmat.primitives.asymmetric import ed25519

    seen: list[ed25519.Ed25519PrivateKey] = []
    real = certsig.issue

    def spy(*args: Any) -> certsig.CertifiedSigner:
        signer = real(*args)
        seen.append(signer._key)
        return signer

    monkeypatch.setattr(certsig, "issue", spy)
    path = tmp_path / "ledger.jsonl"
    add_run(path, kms, time="2026-01-02T03:04:05Z", resources=[Res("terraform_data.a")])  # type: ignore[arg-type]
    (key,) = seen
    raw = key.private_bytes(serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption())
    text = path.read_bytes()
    assert raw not in text and base64.b64encode(raw) not in text and raw.hex().encode() not in text
    assert "Ed25519PrivateKey" not in repr(real(kms, 1, 1, None))  # not even the key object in a repr


def test_a_certificate_is_checked_once_per_verify(ledger: tuple[Path, Path], kms: _KmsLike,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    from tfaudit.trail import recordsig

    path, _ = ledger
    monkeypatch.setattr(recordsig, "_certified", {})
    checked: list[bytes] = []
    real = Verifier.verify

    def counting(self: Verifier, signature: bytes, payload: bytes) -> None:
        if self.key_id == kms.key_id:
            checked.append(payload)
        real(self, signature, payload)

    monkeypatch.setattr(Verifier, "verify", counting)
    trusted = {kms.key_id: Verifier(kms.key.public_key(), kms.key_id, "kms.pub")}
    for raw in ledger_lines(path):
        verify_record(json.loads(raw), trusted, raw.rstrip(b"\n"))
    assert len(checked) == 2  # two certificates, 45 records
    with pytest.raises(SignatureProblem, match="certificate signature does not match"):
        rec = json.loads(ledger_lines(path)[0])
        rec["signature"]["cert"]["last_seq"] = 43
        verify_record(rec, trusted)


def test_a_plan_recorded_under_the_kms_key_is_recognised_at_apply(kms: _KmsLike, tmp_path: Path) -> None:
    """require_recorded_plan: the plan.recorded a KMS-signed `tfaudit plan` wrote is ours; another key's is not."""
    from tfaudit.run.binding import _signed_by

    path = tmp_path / "ledger.jsonl"
    add_run(path, kms, time="2026-01-02T03:04:05Z", command="plan", resources=[Res("terraform_data.a")])  # type: ignore[arg-type]
    rec = json.loads(ledger_lines(path)[0])
    assert rec["type"] == "plan.recorded" and rec["signature"]["v"] == 3
    assert _signed_by(rec, kms)  # type: ignore[arg-type]
    assert not _signed_by(rec, _KmsLike())  # type: ignore[arg-type]
    rec["plan"]["sha256"] = "b" * 64  # edited: the certificate is ours, the signature no longer matches
    assert not _signed_by(rec, kms)  # type: ignore[arg-type]


@pytest.mark.parametrize("version", [2, 3])
def test_the_line_written_is_the_canonical_form_of_the_signed_record(tmp_path: Path, version: int) -> None:
    from tfaudit.trail.signing import generate_keypair, load_signer, seal_line

    signer = certsig.issue(_KmsLike(), 1, 9, None) if version == 3 else load_signer(generate_keypair(tmp_path / "k")[0])
    body = {"chain": {"prev": None, "seq": 1}, "id": "x", "z": {"nested": ["é", 1, None]}}
    sealed, line = seal_line(body, signer)
    assert sealed["signature"]["v"] == version and line == canonical(sealed)
    # the signature's bytes also appear elsewhere in the record: still the canonical form
    head = {k: v for k, v in sealed["signature"].items() if k != "value"}
    for other in (head, 0):
        sealed, line = seal_line({**body, "a": {"signature": other}}, signer)
        assert line == canonical(sealed)
