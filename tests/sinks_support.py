"""Test helpers for the sink tests: a real HTTP receiver on 127.0.0.1 and small signed ledgers.

The receiver checks the webhook HMAC signature and its timestamp, remembers each
Idempotency-Key it accepted (a second arrival is answered 200 but counted as a duplicate,
as a real receiver would), and can be told to fail: refuse connections, answer 500 or
429, answer slowly, or hang until released.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from tfaudit import records
from tfaudit.trail.ledger import Appended, Ledger
from tfaudit.trail.signing import Ed25519Signer, load_signer


@dataclass
class Arrival:
    path: str
    headers: dict[str, str]
    body: bytes
    status: int
    signature_ok: bool | None
    duplicate: bool = False
    client_port: int = 0  # the sender's port: one per connection it opened

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Receiver:
    secret: bytes | None = None
    mode: str = "ok"  # ok | 500 | 429 | slow | hang | 400
    slow_seconds: float = 3.0
    arrivals: list[Arrival] = field(default_factory=list)
    port: int = 0
    max_skew: int = 300
    fail_first: int = 0  # answer this many requests with 500 (then behave as `mode` says)
    keep_alive: bool = True  # HTTP/1.1 persistent connections, as real receivers offer
    answer: Callable[[int], int] | None = None  # the status for the n-th request (1-based), overriding the rest

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self._seen: set[str] = set()
        self._count = 0
        self._release = threading.Event()
        self.request_arrived = threading.Event()
        self._server: ThreadingHTTPServer | None = None
        self.start()

    # -- lifecycle ---------------------------------------------------------------
    def start(self) -> None:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1" if self.keep_alive else "HTTP/1.0"
            disable_nagle_algorithm = True  # answer at once, as production servers do

            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:  # noqa: N802 - http.server's naming
                receiver._handle(self)

        server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        server.daemon_threads = True
        self.port = server.server_address[1]
        self._server = server
        threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()

    def stop(self) -> None:
        """Close the port: connections are then refused until start()."""
        if self._server:
            self._release.set()
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def release(self) -> None:
        self._release.set()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    # -- what arrived --------------------------------------------------------------
    def accepted(self, path: str | None = None) -> list[Arrival]:
        with self._lock:
            return [a for a in self.arrivals if 200 <= a.status < 300 and not a.duplicate
                    and (path is None or a.path == path)]

    def all(self, path: str | None = None) -> list[Arrival]:
        with self._lock:
            return [a for a in self.arrivals if path is None or a.path == path]

    # -- handling --------------------------------------------------------------------
    def _check_signature(self, headers: dict[str, str], body: bytes) -> bool:
        assert self.secret is not None
        header = headers.get("X-Tfaudit-Signature", "")
        parts = dict(p.split("=", 1) for p in header.split(",") if "=" in p)
        try:
            t = int(parts["t"])
        except (KeyError, ValueError):
            return False
        if abs(time.time() - t) > self.max_skew:
            return False
        want = hmac.new(self.secret, f"{t}.".encode() + body, hashlib.sha256).hexdigest()
        return hmac.compare_digest(want, parts.get("v1", ""))

    def _handle(self, h: BaseHTTPRequestHandler) -> None:
        length = int(h.headers.get("Content-Length") or 0)
        body = h.rfile.read(length)
        headers = {k: v for k, v in h.headers.items()}
        self.request_arrived.set()
        mode = self.mode
        if mode == "hang":
            self._release.wait(60)
            arrival = Arrival(h.path, headers, body, 0, None)
            with self._lock:
                self.arrivals.append(arrival)
            return  # never answered: the client is killed or times out
        if mode == "slow":
            time.sleep(self.slow_seconds)
        sig_ok = self._check_signature(headers, body) if self.secret is not None else None
        status = {"500": 500, "429": 429, "400": 400}.get(mode, 200)
        with self._lock:
            self._count += 1
            if self.fail_first > 0:
                self.fail_first -= 1
                status = 500
            if self.answer is not None:
                status = self.answer(self._count)
        if sig_ok is False:
            status = 401
        key = headers.get("Idempotency-Key")
        dup = False
        with self._lock:
            if status == 200 and key:
                dup = key in self._seen
                self._seen.add(key)
            self.arrivals.append(Arrival(h.path, headers, body, status, sig_ok, dup, h.client_address[1]))
        try:
            h.send_response(status)
            if status == 429:
                h.send_header("Retry-After", "0")
            payload = b"ok" if status == 200 else b'{"error":"nope"}'
            h.send_header("Content-Length", str(len(payload)))
            h.end_headers()
            h.wfile.write(payload)
        except OSError:
            pass


# --- small signed ledgers without terraform -----------------------------------------------------
def _run(workspace: str = "default") -> records.RunInfo:
    return records.RunInfo(id=records.RunId(records.new_id()), command="apply", args=(), tool="terraform",
                           tool_version="1.11.4", workspace=workspace, working_dir="/work/infra",
                           plan_sha256="0" * 64)


def _resource(address: str, action: str, status: str = "succeeded", pad: int = 0) -> dict[str, Any]:
    actions = {"create": ["create"], "update": ["update"], "delete": ["delete"],
               "replace": ["delete", "create"]}[action]
    after = None if action == "delete" else {"input": "x" * pad if pad else {"v": 1}}
    return {"address": address, "previous_address": None, "module": None, "mode": "managed",
            "type": address.split(".")[0], "name": address.split(".")[1], "index": None, "deposed": None,
            "provider": "registry.terraform.io/hashicorp/aws", "actions": actions, "action": action,
            "action_reason": None, "importing": None, "status": status,
            "error": {"summary": "boom", "detail": "it broke"} if status == "failed" else None,
            "elapsed_seconds": 0.1, "changed_paths": ["input"], "changed_paths_truncated": False,
            "before": None, "after": after}


def run_records(changes: list[tuple[str, str, str]], *, workspace: str = "default", status: str | None = None,
                pad: int = 0, user: str = "alice") -> list[dict[str, Any]]:
    """A run.started, one resource.changed per (address, action, status), and a run.finished."""
    run = _run(workspace)
    actor = {"user": user, "os_user": user, "hostname": "ci-runner-1", "git": None, "ci": None}
    plan = {"sha256": "0" * 64, "format_version": "1.2", "errored": False, "summary": {},
            "changes": [{"address": a, "actions": ["create"], "action_reason": None} for a, _, _ in changes],
            "resource_drift": []}
    recs = [records.base_record("run.started", run, actor, plan=plan)]
    counts = {"succeeded": 0, "failed": 0, "not_attempted": 0}
    for address, action, st in changes:
        counts[st] = counts.get(st, 0) + 1
        recs.append(records.base_record("resource.changed", run, actor, resource=_resource(address, action, st, pad)))
    final = status or ("succeeded" if not counts["failed"] else "partial" if counts["succeeded"] else "failed")
    recs.append(records.base_record("run.finished", run, actor, outcome=records.outcome_body(
        status=final, exit_code=0 if final == "succeeded" else 1, counts=counts, state_before=None,
        state_after=None, duration_seconds=1.0)))
    return recs


def new_signer(tmp: Path) -> tuple[Ed25519Signer, Path]:
    from tfaudit.trail.signing import generate_keypair

    priv, pub = generate_keypair(tmp / "keys" / "signing-key")
    return load_signer(priv), pub


def append_run(ledger: Path, signer: Ed25519Signer, changes: list[tuple[str, str, str]], **kw: Any) -> list[Appended]:
    return Ledger(ledger).append(run_records(changes, **kw), signer)


def kms_digest_patch() -> tuple[Any, str, Any]:
    """(class, attribute, replacement) making the in-process moto server sign MessageType=DIGEST as
    AWS KMS does: the digest is signed as a prehashed SHA-256 value, not hashed again (moto's gap).
    The private key stays inside moto; only the tests use this."""
    import base64

    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec, utils
    from moto.kms import responses

    original = responses.KmsResponse.sign

    def sign(self: Any) -> str:
        if self._get_param("MessageType") != "DIGEST":
            return original(self)  # type: ignore[no-any-return]
        key = self.kms_backend.describe_key(self._get_param("KeyId"))
        sig = key.private_key.private_key.sign(self._get_param("Message"), ec.ECDSA(utils.Prehashed(hashes.SHA256())))
        return json.dumps({"KeyId": key.arn, "Signature": base64.b64encode(sig).decode(),
                           "SigningAlgorithm": self._get_param("SigningAlgorithm")})

    return responses.KmsResponse, "sign", sign
