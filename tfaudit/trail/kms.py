"""Records signed under an asymmetric AWS KMS key (ECC_NIST_P256, ECDSA_SHA_256).

Configured with `signing { signer = "kms"  kms_key_id = "alias/audit" }` (plus optional
`region`, `profile`, `endpoint_url`). The private key never leaves KMS: tfaudit hashes
the canonical bytes with SHA-256 and asks KMS to sign that digest (`MessageType=DIGEST`).
The result is a DER ECDSA signature that anyone holding the public key verifies offline.

What KMS signs is one certificate per append batch (`certifies_batches`, see
tfaudit.trail.certsig): the records themselves are signed by the batch's Ed25519 key, so a
run costs one `Sign` call per append, not one per record.

The public key is fetched once (`GetPublicKey`) and cached under
`$XDG_CACHE_HOME/tfaudit/kms/`. Every signature KMS returns is checked against it before
a record is written, so a wrong key, a stale cache or a misbehaving endpoint fails the
run (nothing is applied) instead of writing records that will never verify.
"""

from __future__ import annotations

import hashlib
import json
import os
from concurrent.futures import Future, ThreadPoolExecutor
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from tfaudit import _aws
from tfaudit.errors import SigningKeyError
from tfaudit.trail.signing import ECDSA_P256_SHA256, key_id_for

KMS_KEY_SPEC = "ECC_NIST_P256"
KMS_SIGNING_ALGORITHM = "ECDSA_SHA_256"


def _cache_dir(env: Mapping[str, str]) -> Path:
    base = env.get("XDG_CACHE_HOME") or os.path.join(env.get("HOME") or os.path.expanduser("~"), ".cache")
    return Path(base) / "tfaudit" / "kms"


def _cache_path(env: Mapping[str, str], key_ref: str, settings: _aws.AwsSettings) -> Path:
    ident = json.dumps([key_ref, settings.region or env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION"),
                        settings.profile or env.get("AWS_PROFILE"),
                        settings.endpoint_url or env.get("AWS_ENDPOINT_URL_KMS") or env.get("AWS_ENDPOINT_URL")])
    return _cache_dir(env) / (hashlib.sha256(ident.encode()).hexdigest()[:32] + ".json")


def _kms_error(e: BaseException, key_ref: str, what: str) -> SigningKeyError:
    code = _aws.error_code(e)
    text = _aws.error_text(e)
    if type(e).__name__ in ("NoCredentialsError", "PartialCredentialsError"):
        return SigningKeyError(f"no AWS credentials for the KMS signer ({key_ref})",
                               hint="set AWS_PROFILE or AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, or signing.profile")
    if code in ("NotFoundException", "InvalidArnException"):
        return SigningKeyError(f"AWS KMS key {key_ref} was not found ({text})",
                               hint="check signing.kms_key_id and the region")
    if code in ("AccessDeniedException", "KMSInvalidStateException", "DisabledException"):
        return SigningKeyError(f"AWS KMS refused to {what} with {key_ref} ({text})",
                               hint="grant kms:Sign and kms:GetPublicKey on the key, and check it is enabled")
    return SigningKeyError(f"AWS KMS could not {what} with {key_ref}: {text}",
                           hint="check the network, region and endpoint_url")


def fetch_public_key(client: Any, key_ref: str) -> tuple[ec.EllipticCurvePublicKey, str]:
    """GetPublicKey: the key's public half and its ARN, after checking it is a P-256 signing key."""
    try:
        resp = client.get_public_key(KeyId=key_ref)
    except _aws.botocore_errors() as e:
        raise _kms_error(e, key_ref, "read the public key") from e
    spec = resp.get("KeySpec") or resp.get("CustomerMasterKeySpec")
    if spec != KMS_KEY_SPEC or resp.get("KeyUsage") != "SIGN_VERIFY" \
            or KMS_SIGNING_ALGORITHM not in (resp.get("SigningAlgorithms") or []):
        raise SigningKeyError(f"AWS KMS key {key_ref} is {spec}/{resp.get('KeyUsage')}, not an {KMS_KEY_SPEC} "
                              f"SIGN_VERIFY key with {KMS_SIGNING_ALGORITHM}",
                              hint="create one with: aws kms create-key --key-spec ECC_NIST_P256 --key-usage SIGN_VERIFY")
    key = serialization.load_der_public_key(resp["PublicKey"])
    if not isinstance(key, ec.EllipticCurvePublicKey) or not isinstance(key.curve, ec.SECP256R1):
        raise SigningKeyError(f"AWS KMS key {key_ref} did not return a P-256 public key")
    return key, str(resp.get("KeyId") or key_ref)


def public_key_pem(key: ec.EllipticCurvePublicKey) -> bytes:
    return key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


class KmsSigner:
    """A Signer (see tfaudit.trail.signing) whose private key stays in AWS KMS."""

    algorithm = ECDSA_P256_SHA256
    certifies_batches = True  # records are signed by a batch key this key certifies (tfaudit.trail.certsig)

    def __init__(self, client: Any, key_ref: str, public_key: ec.EllipticCurvePublicKey, key_arn: str,
                 refresh: Any = None) -> None:
        self._client = client
        self.key_ref = key_ref
        self.public_key = public_key
        self.kms_key = key_arn  # carried in the record's signature object
        self.key_id = key_id_for(public_key)
        self._refresh = refresh

    @property
    def client(self) -> Any:
        """The KMS client; one being made in the background is waited for (its error raised here)."""
        if isinstance(self._client, Future):
            self._client = self._client.result()
        return self._client

    @classmethod
    def from_config(cls, options: Mapping[str, Any], env: Mapping[str, str]) -> KmsSigner:
        """The signer. With the key's public half cached, its client (boto3's import and the KMS model:
        0.5-0.7 s) is made in the background, while terraform plans; the first signature waits for it."""
        key_ref = str(options["kms_key_id"])
        settings = _aws.AwsSettings(options.get("region"), options.get("profile"), options.get("endpoint_url"))

        def make_client() -> Any:
            try:
                return _aws.client("kms", settings, env, connect_timeout=5.0, read_timeout=10.0, max_attempts=3)
            except ImportError as e:
                raise SigningKeyError("the KMS signer needs boto3", hint="pip install 'tfaudit[aws]'") from e
            except _aws.botocore_errors() as e:
                raise _kms_error(e, key_ref, "set up a client") from e

        cache = _cache_path(env, key_ref, settings)

        def fetch_and_remember(client: Any) -> tuple[ec.EllipticCurvePublicKey, str]:
            key, arn = fetch_public_key(client, key_ref)
            try:
                cache.parent.mkdir(parents=True, exist_ok=True)
                tmp = cache.with_suffix(".tmp")
                tmp.write_text(json.dumps({"key": key_ref, "arn": arn, "pem": public_key_pem(key).decode()}))
                os.replace(tmp, cache)
            except OSError:
                pass  # a cache we cannot write only costs a GetPublicKey per run
            return key, arn

        cached = _read_cache(cache)
        signer: KmsSigner
        if cached:
            pool = ThreadPoolExecutor(1, thread_name_prefix="tfaudit-kms-client")
            pending = pool.submit(make_client)
            pool.shutdown(wait=False)  # its thread finishes the client; the interpreter's exit waits for it
            signer = cls(pending, key_ref, *cached, lambda: fetch_and_remember(signer.client))
        else:
            client = make_client()
            signer = cls(client, key_ref, *fetch_and_remember(client), lambda: fetch_and_remember(client))
        return signer

    def _sign_digest(self, digest: bytes) -> bytes:
        try:
            resp = self.client.sign(KeyId=self.kms_key, Message=digest, MessageType="DIGEST",
                                    SigningAlgorithm=KMS_SIGNING_ALGORITHM)
        except _aws.botocore_errors() as e:
            raise _kms_error(e, self.key_ref, "sign") from e
        return bytes(resp["Signature"])

    def sign(self, payload: bytes) -> bytes:
        sig = self._sign_digest(hashlib.sha256(payload).digest())
        if self._verifies(sig, payload):
            return sig
        if self._refresh is not None:  # the cached public key may be stale (key replaced behind an alias)
            self.public_key, self.kms_key = self._refresh()
            self.key_id = key_id_for(self.public_key)
            self._refresh = None
            sig = self._sign_digest(hashlib.sha256(payload).digest())
            if self._verifies(sig, payload):
                return sig
        raise SigningKeyError(f"AWS KMS returned a signature for {self.key_ref} that does not verify with the key's "
                              "public key", hint="check that signing.endpoint_url reaches AWS KMS; a KMS emulator "
                                                 "may not implement MessageType=DIGEST")

    def _verifies(self, sig: bytes, payload: bytes) -> bool:
        try:
            self.public_key.verify(sig, payload, ec.ECDSA(hashes.SHA256()))
            return True
        except InvalidSignature:
            return False


def _read_cache(path: Path) -> tuple[ec.EllipticCurvePublicKey, str] | None:
    try:
        data = json.loads(path.read_text())
        key = serialization.load_pem_public_key(str(data["pem"]).encode())
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if not isinstance(key, ec.EllipticCurvePublicKey) or not isinstance(key.curve, ec.SECP256R1):
        return None
    return key, str(data.get("arn") or data.get("key"))
