"""AWS KMS signing against the session's moto server.

moto's KMS `Sign` hashes a `MessageType=DIGEST` message again (a known gap, see
ENVIRONMENT.md), so a correct client gets a signature over SHA-256(digest). These tests
show both sides honestly: the request tfaudit sends is exactly what AWS KMS documents,
and against unmodified moto the signer refuses the bad signature (fail closed). To check
the offline verification path end to end, `kms_digest_honoured` makes the in-process moto
server sign a DIGEST as AWS KMS does (the private key never leaves moto); production code
is the same in both cases.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

from conftest import CliResult, MotoServer
from sinks_support import kms_digest_patch, run_records
from tfaudit.errors import SigningKeyError
from tfaudit.trail.ledger import Ledger

pytestmark = [pytest.mark.slow]


@pytest.fixture
def kms_digest_honoured(moto_server: MotoServer, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Make the in-process moto server sign MessageType=DIGEST like AWS KMS (no second hash)."""
    monkeypatch.setattr(*kms_digest_patch())
    yield


@pytest.fixture
def env(moto_server: MotoServer, tmp_path: Path) -> dict[str, str]:
    return {**moto_server.aws_env(), "HOME": str(tmp_path), "XDG_CACHE_HOME": str(tmp_path / "cache")}


def _signer(alias: str, env: dict[str, str]) -> Any:
    from tfaudit.trail.kms import KmsSigner

    return KmsSigner.from_config({"kms_key_id": alias}, env)


def test_sign_request_is_a_sha256_digest_and_moto_gap_is_refused(kms_alias: str, env: dict[str, str]) -> None:
    signer = _signer(kms_alias, env)
    sent: list[dict[str, Any]] = []
    returned: list[bytes] = []
    signer.client.meta.events.register("provide-client-params.kms.Sign", lambda params, **_: sent.append(dict(params)))
    signer.client.meta.events.register("after-call.kms.Sign", lambda parsed, **_: returned.append(parsed["Signature"]))
    payload = b'{"a canonical":"record","of any size":"' + b"x" * 10_000 + b'"}'
    with pytest.raises(SigningKeyError, match="does not verify with the key's public key"):
        signer.sign(payload)
    digest = hashlib.sha256(payload).digest()
    assert sent[0] == {"KeyId": signer.kms_key, "Message": digest, "MessageType": "DIGEST",
                       "SigningAlgorithm": "ECDSA_SHA_256"}
    # what moto did: it hashed the digest again, i.e. signed SHA-256(digest)
    signer.public_key.verify(returned[0], digest, ec.ECDSA(hashes.SHA256()))


def test_kms_signed_records_verify_offline_with_the_fetched_public_key(
        kms_digest_honoured: None, kms_alias: str, env: dict[str, str], tmp_path: Path,
        run_tfaudit: Callable[..., CliResult]) -> None:
    signer = _signer(kms_alias, env)
    signs: list[str] = []
    signer.client.meta.events.register("before-call.kms.Sign", lambda **_: signs.append("Sign"))
    ledger = tmp_path / "ledger.jsonl"
    appended = Ledger(ledger).append(run_records([("aws_s3_bucket.a", "create", "succeeded")]), signer)
    assert signs == ["Sign"]  # one certificate for the batch's key, not one call per record
    sig = appended[0].record["signature"]
    assert sig["v"] == 3 and sig["alg"] == "ed25519"  # the batch key ...
    cert = sig["cert"]  # ... certified by the KMS key
    assert cert["alg"] == "ecdsa-p256-sha256" and cert["key_id"] == signer.key_id
    assert cert["kms_key"] == signer.kms_key and cert["kms_key"]

    res = run_tfaudit("kms-pubkey", "--kms-key-id", kms_alias, "--out", str(tmp_path / "kms.pub"), env=env)
    assert res.returncode == 0, res.output
    assert f"key id:     {signer.key_id}" in res.stdout
    assert (tmp_path / "kms.pub").read_text().startswith("-----BEGIN PUBLIC KEY-----")
    res = run_tfaudit("verify", str(ledger), "--public-key", str(tmp_path / "kms.pub"))
    assert res.returncode == 0 and "OK: 3 records in 1 runs verified" in res.stdout, res.output

    # an edited record no longer verifies against the KMS key
    lines = ledger.read_bytes().splitlines(keepends=True)
    lines[1] = lines[1].replace(b'"aws_s3_bucket.a"', b'"aws_s3_bucket.b"', 1)
    ledger.write_bytes(b"".join(lines))
    res = run_tfaudit("verify", str(ledger), "--public-key", str(tmp_path / "kms.pub"))
    assert res.returncode == 1 and "bad_signature" in res.stdout


def test_public_key_is_fetched_once_and_a_stale_cache_is_refreshed(
        kms_digest_honoured: None, kms_alias: str, env: dict[str, str], monkeypatch: pytest.MonkeyPatch,
        moto_server: MotoServer) -> None:
    import tfaudit.trail.kms as kms_mod

    calls: list[str] = []
    real = kms_mod.fetch_public_key
    monkeypatch.setattr(kms_mod, "fetch_public_key", lambda client, ref: (calls.append(ref), real(client, ref))[1])
    first = _signer(kms_alias, env)
    second = _signer(kms_alias, env)
    assert calls == [kms_alias] and second.key_id == first.key_id
    (cache,) = (Path(env["XDG_CACHE_HOME"]) / "tfaudit" / "kms").glob("*.json")

    # the alias now points at a new key: the cached public key is stale
    kms = moto_server.client("kms")
    new_key = kms.create_key(KeySpec="ECC_NIST_P256", KeyUsage="SIGN_VERIFY")["KeyMetadata"]["KeyId"]
    kms.update_alias(AliasName=kms_alias, TargetKeyId=new_key)
    cached = json.loads(cache.read_text())
    third = _signer(kms_alias, env)
    third.kms_key = kms_alias  # sign through the alias, as the cached ARN of the old key would not
    assert third.key_id == first.key_id  # from the cache
    payload = b"payload"
    sig = third.sign(payload)
    assert third.key_id != first.key_id and len(calls) == 2  # refreshed once
    third.public_key.verify(sig, payload, ec.ECDSA(hashes.SHA256()))
    assert json.loads(cache.read_text())["pem"] != cached["pem"]


@pytest.mark.parametrize(("spec", "usage", "message"), [
    ("SYMMETRIC_DEFAULT", "ENCRYPT_DECRYPT", "not an ECC_NIST_P256 SIGN_VERIFY key"),
    ("RSA_2048", "SIGN_VERIFY", "not an ECC_NIST_P256 SIGN_VERIFY key"),
])
def test_a_key_of_the_wrong_kind_is_refused(moto_server: MotoServer, env: dict[str, str], spec: str, usage: str,
                                            message: str) -> None:
    kms = moto_server.client("kms")
    key_id = kms.create_key(KeySpec=spec, KeyUsage=usage)["KeyMetadata"]["KeyId"]
    with pytest.raises(SigningKeyError, match=message):
        _signer(key_id, env)


def test_a_missing_key_and_missing_credentials_are_clear_errors(env: dict[str, str], tmp_path: Path) -> None:
    with pytest.raises(SigningKeyError, match="was not found"):
        _signer("alias/does-not-exist", env)
    bare = {"HOME": str(tmp_path), "AWS_ENDPOINT_URL": env["AWS_ENDPOINT_URL"], "AWS_REGION": "us-east-1",
            "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "none"), "AWS_CONFIG_FILE": str(tmp_path / "none"),
            "XDG_CACHE_HOME": str(tmp_path / "c2")}
    with pytest.raises(SigningKeyError) as err:
        _signer("alias/anything", bare)
    assert "no AWS credentials" in str(err.value) or "could not" in str(err.value)


def test_with_the_key_cached_the_client_is_made_in_the_background(
        kms_digest_honoured: None, kms_alias: str, env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    """The second run's signer is ready before its KMS client is (made while terraform plans); the first
    signature waits for it; a client that cannot be made is the same one-line error, at that signature."""
    import threading

    import tfaudit.trail.kms as kms_mod

    _signer(kms_alias, env)  # fetches the public key and caches it
    gate = threading.Event()
    real = kms_mod._aws.client

    def slow_client(*a: Any, **k: Any) -> Any:
        gate.wait(10)
        return real(*a, **k)

    monkeypatch.setattr(kms_mod._aws, "client", slow_client)
    signer = _signer(kms_alias, env)  # returns while the client is still being made
    assert signer.key_id and not gate.is_set()
    gate.set()
    payload = b'{"a":"record"}'
    signer.public_key.verify(signer.sign(payload), payload, ec.ECDSA(hashes.SHA256()))

    def no_client(*a: Any, **k: Any) -> Any:
        raise ImportError("No module named 'boto3'")

    monkeypatch.setattr(kms_mod._aws, "client", no_client)
    broken = _signer(kms_alias, env)
    with pytest.raises(SigningKeyError, match="the KMS signer needs boto3"):
        broken.sign(payload)
