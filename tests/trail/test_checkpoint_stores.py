"""Checkpoint destinations over real protocols: S3 with Object Lock (the moto server) and a webhook (a local HTTP server)."""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from tfaudit.trail import checkpoints as cps
from tfaudit.trail.checkpoints import CheckpointSettings, WebhookStore
from tfaudit.errors import DeliveryError
from tfaudit.trail.signing import generate_keypair, load_signer, load_verifier

pytestmark = [pytest.mark.slow]


def _lines(n: int, tag: str = "r") -> list[bytes]:
    return [b'{"n":%d,"t":"%s"}' % (i, tag.encode()) for i in range(n)]


def _write(path: Path, lines: list[bytes]) -> None:
    path.write_bytes(b"".join(x + b"\n" for x in lines))


@pytest.fixture
def keys(tmp_path: Path) -> Any:
    priv, pub = generate_keypair(tmp_path / "k")
    return load_signer(priv), load_verifier(pub), priv, pub


def test_s3_object_lock_destination(moto_server: Any, keys: Any, tmp_path: Path, run_tfaudit: Any) -> None:
    signer, verifier, _, pub = keys
    s3 = moto_server.client("s3")
    bucket = f"tfaudit-anchors-{uuid.uuid4().hex[:12]}"
    s3.create_bucket(Bucket=bucket, ObjectLockEnabledForBucket=True)
    env = moto_server.aws_env()
    ledger = tmp_path / "ledger.jsonl"
    settings = CheckpointSettings(location=f"s3://{bucket}/prod")
    _write(ledger, _lines(3))
    cps.anchor(ledger, signer, settings, env)
    _write(ledger, _lines(3) + _lines(2, "b"))
    result = cps.anchor(ledger, signer, settings, env)
    assert result.written == (f"s3://{bucket}/prod/",) and not result.failed

    keys_in = sorted(o["Key"] for o in s3.list_objects_v2(Bucket=bucket)["Contents"])
    assert len(keys_in) == 3 and all(k.startswith("prod/") for k in keys_in)
    newest = f"prod/{result.checkpoint.name}"
    head = s3.head_object(Bucket=bucket, Key=newest)
    assert head["ObjectLockMode"] == "COMPLIANCE" and head["ObjectLockRetainUntilDate"]
    # Object Lock: the writer cannot delete the anchored version
    with pytest.raises(Exception, match="AccessDenied"):
        s3.delete_object(Bucket=bucket, Key=newest, VersionId=head["VersionId"])

    # verify reads the checkpoints back from S3, through the CLI as a user runs it
    ok = run_tfaudit("verify", str(ledger), "--public-key", str(pub), "--checkpoints", f"s3://{bucket}/prod", env=env)
    assert "OK: the ledger extends all 2 checkpoint(s)" in ok.stdout
    _write(ledger, _lines(3))
    bad = run_tfaudit("verify", str(ledger), "--public-key", str(pub), "--checkpoints", f"s3://{bucket}/prod", env=env)
    assert bad.returncode == 1 and "checkpoints: truncated:" in bad.stdout, bad.output

    # a bucket without Object Lock refuses locked objects: reported, not swallowed
    plain = f"tfaudit-plain-{uuid.uuid4().hex[:12]}"
    s3.create_bucket(Bucket=plain)
    other = tmp_path / "other.jsonl"
    _write(other, _lines(1))
    failed = cps.anchor(other, signer, CheckpointSettings(location=f"s3://{plain}/x"), env)
    assert failed.failed and "ObjectLockConfiguration" in failed.failed[0]


class _Receiver(BaseHTTPRequestHandler):
    received: list[tuple[dict[str, str], bytes]] = []
    status = 200

    def do_POST(self) -> None:  # noqa: N802 - http.server's naming
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        type(self).received.append((dict(self.headers.items()), body))
        self.send_response(type(self).status)
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def receiver() -> Iterator[tuple[str, type[_Receiver]]]:
    handler = type("Receiver", (_Receiver,), {"received": [], "status": 200})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/checkpoints", handler
    finally:
        server.shutdown()
        server.server_close()


def test_webhook_destination(receiver: Any, keys: Any, tmp_path: Path) -> None:
    url, handler = receiver
    signer, verifier, _, _ = keys
    ledger = tmp_path / "ledger.jsonl"
    cfg = tmp_path / ".tfaudit.hcl"
    cfg.write_text('checkpoints {\n  origin = "example.com/infra"\n'
                   f'  destination "webhook" {{\n    url = "{url}"\n    headers = {{ Authorization = "Bearer s3cr3t" }}\n  }}\n}}\n')
    from tfaudit.config import parse_config

    settings = parse_config(cfg).section("checkpoints")
    _write(ledger, _lines(4))
    cps.anchor(ledger, signer, settings, {})
    _write(ledger, _lines(4) + _lines(3, "b"))
    cps.anchor(ledger, signer, settings, {})
    assert len(handler.received) == 2
    headers, body = handler.received[1]
    assert headers["Authorization"] == "Bearer s3cr3t" and headers["Content-Type"] == "application/json"
    doc = json.loads(body)
    cp = cps.open_checkpoint(doc["checkpoint"].encode(), [verifier])
    assert (cp.origin, cp.size, doc["tree_size"], doc["root_hash"]) == ("example.com/infra", 7, 7, cp.root_b64)
    # a webhook cannot be read back, so the previous checkpoint came from the cache beside the ledger,
    # and the consistency proof from it travels in the POST
    assert doc["consistency"]["from_size"] == 4 and doc["consistency"]["to_size"] == 7

    handler.status = 400
    _write(ledger, _lines(4) + _lines(3, "b") + _lines(1, "c"))
    result = cps.anchor(ledger, signer, settings, {})
    assert result.failed and "HTTP 400" in result.failed[0] and "s3cr3t" not in result.failed[0]
    with pytest.raises(DeliveryError):
        WebhookStore(url).store(result.checkpoint, "x", None)
