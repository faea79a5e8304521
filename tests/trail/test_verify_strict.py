"""verify judges each line alone and strictly, and every byte of a line is signed or rejected.

Through the CLI entry point (in-process), on real signed ledgers built by tests/trail_factory.py.
"""

from __future__ import annotations

import base64
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives import hashes, serialization

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from conftest import Cli  # noqa: E402
from trail_factory import Res, add_run, edit_line, ledger_lines  # noqa: E402

from tfaudit.trail.jsonline import MAX_DEPTH, MAX_LINE_BYTES, BadLine, LineFault, bounded_lines, parse_line  # noqa: E402
from tfaudit.trail.ledger import Ledger  # noqa: E402
from tfaudit.trail.signing import (  # noqa: E402
    ECDSA_P256_SHA256, P256_ORDER, canonical, generate_keypair, key_id_for, load_signer, sign_record,
)


@pytest.fixture
def ledger(tmp_path: Path) -> tuple[Path, Path]:
    priv, pub = generate_keypair(tmp_path / "key")
    signer = load_signer(priv)
    path = tmp_path / "ledger.jsonl"
    add_run(path, signer, time="2026-01-02T03:04:05Z", resources=[Res("terraform_data.a"), Res("terraform_data.b")])
    add_run(path, signer, time="2026-01-03T03:04:05Z", resources=[Res("terraform_data.a")])
    return path, pub


def test_clean_ledger_passes_with_signature_v2(ledger: tuple[Path, Path], cli: Cli) -> None:
    path, pub = ledger
    rc, out, _ = cli("verify", str(path), "--public-key", str(pub))
    assert rc == 0 and out.startswith("OK: 7 records in 2 runs"), out
    sig = json.loads(ledger_lines(path)[-1])["signature"]
    assert sig["v"] == 2 and set(sig) == {"alg", "key_id", "v", "value"}


# --- every byte of the last line: the cases of issue 10, item 6 ------------------------------
def _flip_padding_bits(rec: dict[str, Any]) -> None:
    value = rec["signature"]["value"]  # 64 bytes -> 88 chars ending in '==': the char before holds 4 spare bits
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
    c = value[-3]
    changed = value[:-3] + alphabet[alphabet.index(c) ^ 1] + value[-2:]
    assert base64.b64decode(changed) == base64.b64decode(value)  # the bytes are the same: only the spelling changed
    rec["signature"]["value"] = changed


@pytest.mark.parametrize("case, edit, message", [
    ("padding bits", _flip_padding_bits, "not canonical base64"),
    ("alg", lambda r: r["signature"].update(alg="ecdsa-p256-sha256"), "signature.alg is 'ecdsa-p256-sha256'"),
    ("added kms_key", lambda r: r["signature"].update(kms_key="arn:aws:kms:eu-west-1:1:key/x"), "does not match"),
    ("unknown member", lambda r: r["signature"].update(note="hi"), "unknown member(s) note"),
    ("version", lambda r: r["signature"].update(v=4), "unknown signature version 4"),
    ("version 3 without a certificate", lambda r: r["signature"].update(v=3), "version-3 signature lacks cert"),
    ("version removed", lambda r: r["signature"].pop("v"), "does not match"),
])
def test_each_unsigned_byte_of_the_last_line_is_refused(ledger: tuple[Path, Path], cli: Cli, case: str,
                                                        edit: Callable[[dict[str, Any]], None], message: str) -> None:
    path, pub = ledger
    edit_line(path, -1, edit)
    rc, out, _ = cli("verify", str(path), "--public-key", str(pub))
    n = len(ledger_lines(path))
    assert rc == 1, (case, out)
    assert f"{path}:{n}: " in out and message in out, (case, out)


def test_version_1_records_verify_only_in_their_exact_form(tmp_path: Path, cli: Cli) -> None:
    priv, pub = generate_keypair(tmp_path / "key")
    signer = load_signer(priv)
    path = tmp_path / "ledger.jsonl"
    add_run(path, signer, time="2026-01-02T03:04:05Z", resources=[Res("terraform_data.a")])
    # re-sign every line as the previous tfaudit did (signature over the record without its signature object)
    lines, prev = [], None
    for raw in ledger_lines(path):
        rec = json.loads(raw)
        rec.pop("signature")
        rec["chain"]["prev"] = prev
        value = base64.b64encode(signer.sign(canonical(rec))).decode()
        rec["signature"] = {"alg": "ed25519", "key_id": signer.key_id, "value": value}
        line = canonical(rec)
        lines.append(line + b"\n")
        import hashlib
        prev = "sha256:" + hashlib.sha256(line).hexdigest()
    path.write_bytes(b"".join(lines))
    rc, out, _ = cli("verify", str(path), "--public-key", str(pub))
    assert rc == 0, out
    edit_line(path, -1, lambda r: r["signature"].update(kms_key="arn:x"))
    rc, out, _ = cli("verify", str(path), "--public-key", str(pub))
    assert rc == 1 and "version-1 signature with unsigned member(s) kms_key" in out, out
    edit_line(path, -1, lambda r: (r["signature"].pop("kms_key"), _flip_padding_bits(r)))
    rc, out, _ = cli("verify", str(path), "--public-key", str(pub))
    assert rc == 1 and "not canonical base64" in out, out


class _EcdsaSigner:
    """An ECDSA P-256 signer as the KMS signer is (same algorithm, key id and kms_key member)."""

    algorithm = ECDSA_P256_SHA256

    def __init__(self) -> None:
        self.key = ec.generate_private_key(ec.SECP256R1())
        self.key_id = key_id_for(self.key.public_key())
        self.kms_key = "arn:aws:kms:us-east-1:111122223333:key/abc"

    def sign(self, payload: bytes) -> bytes:
        return self.key.sign(payload, ec.ECDSA(hashes.SHA256()))


def test_kms_signatures_bind_kms_key_and_have_one_spelling(tmp_path: Path, cli: Cli) -> None:
    signer = _EcdsaSigner()
    pub = tmp_path / "kms.pub"
    pub.write_bytes(signer.key.public_key().public_bytes(serialization.Encoding.PEM,
                                                         serialization.PublicFormat.SubjectPublicKeyInfo))
    path = tmp_path / "ledger.jsonl"
    add_run(path, signer, time="2026-01-02T03:04:05Z", resources=[Res("terraform_data.a")] * 3)  # type: ignore[arg-type]
    rc, out, _ = cli("verify", str(path), "--public-key", str(pub))
    assert rc == 0, out
    sig = json.loads(ledger_lines(path)[-1])["signature"]
    assert sig["kms_key"] == signer.kms_key and sig["alg"] == ECDSA_P256_SHA256
    from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature, encode_dss_signature

    r, s = decode_dss_signature(base64.b64decode(sig["value"]))
    assert s <= P256_ORDER // 2  # written low-S
    # the other spelling of the same signature (high S) is valid ECDSA, and refused
    high = base64.b64encode(encode_dss_signature(r, P256_ORDER - s)).decode()
    edit_line(path, -1, lambda rec: rec["signature"].update(value=high))
    rc, out, _ = cli("verify", str(path), "--public-key", str(pub))
    assert rc == 1 and "high S" in out, out
    edit_line(path, -1, lambda rec: rec["signature"].update(value=sig["value"], kms_key="arn:aws:kms:other"))
    rc, out, _ = cli("verify", str(path), "--public-key", str(pub))
    assert rc == 1 and "does not match" in out, out


def test_sign_record_re_signs_when_a_kms_key_is_refreshed_while_signing() -> None:
    first, second = _EcdsaSigner(), _EcdsaSigner()

    class Refreshing:
        algorithm = ECDSA_P256_SHA256
        key_id, kms_key, calls = first.key_id, first.kms_key, 0

        def sign(self, payload: bytes) -> bytes:
            self.calls += 1
            self.key_id, self.kms_key = second.key_id, "arn:new"  # the alias now points at another key
            return second.sign(payload)

    signer = Refreshing()
    rec = sign_record({"schema": "tfaudit.record/v1", "id": "x"}, signer)  # type: ignore[arg-type]
    assert signer.calls == 2 and rec["signature"]["key_id"] == second.key_id and rec["signature"]["kms_key"] == "arn:new"


# --- the strict line reader: issue 10, item 5 -------------------------------------------------
BAD_LINES = {
    "nan": (b'{"a":NaN}', "bad_number"),
    "infinity": (b'{"a":-Infinity}', "bad_number"),
    "1e400": (b'{"a":1e400}', "bad_number"),
    "huge int": (b'{"a":' + b"9" * 5000 + b"}", "bad_number"),
    "2**53": (b'{"a":9007199254740992}', "bad_number"),
    "lone surrogate": (b'{"a":"\\ud800"}', "lone_surrogate"),
    "lone surrogate key": (b'{"\\udc00":1}', "lone_surrogate"),
    "deep arrays": (b"[" * 100_000 + b"]" * 100_000, "too_deep"),
    "deep objects": (b'{"a":' * 100_000 + b"1" + b"}" * 100_000, "too_deep"),
    "not utf-8": (b'{"a":"\xff"}', "not_utf8"),
    "not an object": (b"[1,2]", "not_json"),
}


@pytest.mark.parametrize("name", sorted(BAD_LINES))
def test_a_bad_line_is_reported_with_its_number_and_verify_goes_on(ledger: tuple[Path, Path], cli: Cli,
                                                                    name: str) -> None:
    path, pub = ledger
    bad, kind = BAD_LINES[name]
    lines = ledger_lines(path)
    lines.insert(2, bad + b"\n")  # a bad line in the middle: the lines after it are judged too
    path.write_bytes(b"".join(lines))
    rc, out, err = cli("verify", str(path), "--public-key", str(pub))
    assert rc == 1 and not err, (name, err)
    assert f"{path}:3: {kind}: " in out, (name, out)
    assert f"{path}:4: sequence" in out  # the line after it is still judged: its seq no longer fits
    for command in (["log", str(path)], ["history", "terraform_data.a", "--ledger", str(path)],
                    ["export", "--format", "ocsf", str(path)]):
        rc, out, err = cli(*command)
        assert rc == 0 and "internal error" not in err, (name, command, err)
    assert "terraform_data.a" in out


def test_good_values_near_the_limits_are_accepted() -> None:
    line = json.dumps({"a": [[[1]]] * 3, "b": 2**53 - 1, "c": -(2**53 - 1), "d": 1.5e308, "e": "\ud83d\ude00 \\ud800"},
                      ensure_ascii=True).encode()
    assert parse_line(line)["b"] == 2**53 - 1
    nested = b'{"a":' + b"[" * (MAX_DEPTH - 1) + b"]" * (MAX_DEPTH - 1) + b"}"
    assert parse_line(nested)
    with pytest.raises(BadLine) as e:
        parse_line(b'{"a":' + b"[" * MAX_DEPTH + b"]" * MAX_DEPTH + b"}")
    assert e.value.fault is LineFault.TOO_DEEP
    brackets_in_strings = json.dumps({"s": "[" * 1000 + "{" * 1000}).encode()
    assert parse_line(brackets_in_strings)["s"].startswith("[[")


def test_an_overlong_line_is_refused_in_bounded_memory(tmp_path: Path) -> None:
    import io

    lines = list(bounded_lines(io.BytesIO(b"a\n" + b"x" * (3 * 1024) + b"\nb"), limit=1024))
    assert lines == [b"a\n", b"x" * 1025, b"b"]
    with pytest.raises(BadLine) as e:
        parse_line(b"{" + b" " * MAX_LINE_BYTES + b"}")
    assert e.value.fault is LineFault.TOO_LONG


def test_a_ledger_with_no_newline_in_gigabytes_is_refused_without_reading_it_whole(ledger: tuple[Path, Path],
                                                                                   cli: Cli) -> None:
    path, pub = ledger
    with path.open("ab") as f:  # a sparse 1 GiB tail with no newline: reading it whole would need 1 GiB
        f.truncate(path.stat().st_size + 2**30)
    import resource

    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    rc, out, _ = cli("verify", str(path), "--public-key", str(pub), "--chain-only")
    grown_mib = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    assert rc == 1 and f"{path}:8: too_long: " in out, out
    assert grown_mib < 200, grown_mib


def test_chain_only_checks_order_without_a_key(ledger: tuple[Path, Path], cli: Cli) -> None:
    path, _ = ledger
    rc, out, _ = cli("verify", str(path), "--chain-only")
    assert rc == 0 and "signatures NOT checked" in out and "7 lines chained" in out
    lines = ledger_lines(path)
    lines[2], lines[3] = lines[3], lines[2]
    path.write_bytes(b"".join(lines))
    rc, out, _ = cli("verify", str(path), "--chain-only")
    assert rc == 1 and f"{path}:3: sequence" in out and f"{path}:3: prev_digest" in out, out


def test_parallel_and_single_process_reports_are_identical(tmp_path: Path) -> None:
    from tfaudit.trail.signing import load_verifier
    from tfaudit.trail.verify import verify_ledger
    from tfaudit.trail.workers import CHUNK_LINES

    priv, pub = generate_keypair(tmp_path / "key")
    signer = load_signer(priv)
    path = tmp_path / "ledger.jsonl"
    for i in range(CHUNK_LINES // 3):  # about 1.3 chunks
        add_run(path, signer, time="2026-01-02T03:04:05Z", resources=[Res(f"terraform_data.r{i}")] * 2)
    lines = ledger_lines(path)
    for n in (5, CHUNK_LINES + 7, len(lines) - 3):  # damage in several chunks
        lines[n] = lines[n].replace(b'"succeeded"', b'"failed"', 1) if b'"succeeded"' in lines[n] else b"{bad\n"
    lines.insert(CHUNK_LINES - 1, b'{"a":NaN}\n')
    path.write_bytes(b"".join(lines))
    one = verify_ledger(path, [load_verifier(pub)], jobs=1)
    two = verify_ledger(path, [load_verifier(pub)], jobs=2)
    assert one.as_dict() == two.as_dict() and len(one.problems) >= 4
    assert [p.line for p in two.problems] == sorted(p.line or 0 for p in two.problems)


def test_a_record_too_big_for_a_line_is_refused_when_written(tmp_path: Path) -> None:
    from tfaudit.errors import LedgerError

    signer = load_signer(generate_keypair(tmp_path / "key")[0])
    path = tmp_path / "ledger.jsonl"
    add_run(path, signer, time="2026-01-02T03:04:05Z", resources=[Res("terraform_data.a")])
    before = path.read_bytes()
    rec = json.loads(ledger_lines(path)[1])
    rec["resource"]["after"] = {"blob": "x" * (MAX_LINE_BYTES + 10)}
    with pytest.raises(LedgerError, match="over the 16 MiB a ledger line may hold"):
        Ledger(path).append([rec], signer)
    assert path.read_bytes() == before


def test_torn_tail_after_a_line_that_is_not_a_record_is_reported_not_fatal(ledger: tuple[Path, Path],
                                                                            cli: Cli) -> None:
    # found by the fuzzer: the snapshot's tail search stepped back past the torn bytes and then
    # treated the damaged line before them as a writer would (exit 4) instead of reporting it
    path, pub = ledger
    lines = ledger_lines(path)
    path.write_bytes(b"".join(lines[:-1]) + b"z" + lines[-1][1:] + b"{")
    rc, out, err = cli("verify", str(path), "--public-key", str(pub))
    n = len(lines)
    assert rc == 1 and not err, err
    assert f"{path}:{n}: not_json: " in out and f"{path}:{n + 1}: torn_line: " in out, out
