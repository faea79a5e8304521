"""CI identity: GitHub Actions OIDC claims (from a local token endpoint with a token the test signs)
into actor.ci.oidc, never the token; and the cross-check of actor.ci / actor.cloud against `expect`."""

from __future__ import annotations

import base64
import json
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from conftest import CliResult, read_ledger
from tfaudit.identity.oidc import OidcConfig, identity_from_token

REQUEST_TOKEN = "req-credential-5f1e2d3c4b5a69788796a5b4c3d2e1f0"
MOTO_ACCOUNT = "123456789012"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _int_b64(n: int) -> str:
    return _b64(n.to_bytes((n.bit_length() + 7) // 8, "big"))


class Issuer:
    """Plays GitHub's token endpoint and OIDC issuer on 127.0.0.1, with an RSA key of its own."""

    def __init__(self) -> None:
        self.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.kid = "test-key-1"
        self.requests: list[dict[str, Any]] = []
        self.claims_override: dict[str, Any] = {}
        self.sign_with: rsa.RSAPrivateKey | None = None
        issuer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:  # noqa: N802
                url = urlsplit(self.path)
                issuer.requests.append({"path": url.path, "query": parse_qs(url.query),
                                        "auth": self.headers.get("Authorization")})
                if url.path == "/token":
                    if self.headers.get("Authorization") != f"bearer {REQUEST_TOKEN}":
                        return self._send(401, {"message": "bad credential"})
                    aud = parse_qs(url.query).get("audience", [""])[0]
                    return self._send(200, {"count": 1, "value": issuer.token(aud)})
                if url.path == "/.well-known/openid-configuration":
                    return self._send(200, {"issuer": issuer.url, "jwks_uri": issuer.url + "/.well-known/jwks"})
                if url.path == "/.well-known/jwks":
                    pub = issuer.key.public_key().public_numbers()
                    return self._send(200, {"keys": [{"kty": "RSA", "alg": "RS256", "use": "sig", "kid": issuer.kid,
                                                      "n": _int_b64(pub.n), "e": _int_b64(pub.e)}]})
                self._send(404, {})

            def _send(self, code: int, body: Any) -> None:
                data = json.dumps(body).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        self.issued: list[str] = []

    def token(self, audience: str, **extra: Any) -> str:
        now = int(time.time())
        claims = {"iss": self.url, "aud": audience, "sub": "repo:acme/infra:ref:refs/heads/main",
                  "repository": "acme/infra", "repository_owner": "acme", "ref": "refs/heads/main",
                  "sha": "a" * 40, "workflow": "deploy", "actor": "octocat", "run_id": "4242", "run_attempt": "1",
                  "event_name": "push", "iat": now, "nbf": now, "exp": now + 300,
                  **self.claims_override, **extra}
        header = {"alg": "RS256", "typ": "JWT", "kid": self.kid}
        signing_input = f"{_b64(json.dumps(header).encode())}.{_b64(json.dumps(claims).encode())}"
        sig = (self.sign_with or self.key).sign(signing_input.encode(), padding.PKCS1v15(), hashes.SHA256())
        token = f"{signing_input}.{_b64(sig)}"
        self.issued.append(token)
        return token

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def issuer() -> Iterator[Issuer]:
    iss = Issuer()
    try:
        yield iss
    finally:
        iss.close()


def github_env(issuer: Issuer, **over: str) -> dict[str, str]:
    return {"GITHUB_ACTIONS": "true", "GITHUB_REPOSITORY": "acme/infra", "GITHUB_REF": "refs/heads/main",
            "GITHUB_RUN_ID": "4242", "GITHUB_ACTOR": "octocat", "GITHUB_WORKFLOW": "deploy",
            "GITHUB_SERVER_URL": "https://github.com", "GITHUB_EVENT_NAME": "push",
            "ACTIONS_ID_TOKEN_REQUEST_URL": issuer.url + "/token?api-version=2.0",
            "ACTIONS_ID_TOKEN_REQUEST_TOKEN": REQUEST_TOKEN, **over}


# --- the token itself ------------------------------------------------------------------------------
def test_claims_verify_against_the_issuers_keys(issuer: Issuer) -> None:
    cfg = OidcConfig(issuer=issuer.url)
    ident = identity_from_token(issuer.token("tfaudit"), cfg)
    assert ident["verified"] is True and ident["reason"] is None and ident["issuer"] == issuer.url
    assert ident["claims"]["repository"] == "acme/infra" and ident["claims"]["run_id"] == "4242"
    paths = [r["path"] for r in issuer.requests]
    assert paths == ["/.well-known/openid-configuration", "/.well-known/jwks"]


@pytest.mark.parametrize("case, expect", [
    ("forged", "signature does not match"),
    ("expired", "expired"),
    ("audience", "audience 'sts.amazonaws.com' does not include 'tfaudit'"),
    ("issuer", "is not the configured"),
])
def test_bad_tokens_are_kept_as_received_and_marked_unverified(issuer: Issuer, case: str, expect: str) -> None:
    cfg = OidcConfig(issuer=issuer.url)
    if case == "forged":
        issuer.sign_with = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        token = issuer.token("tfaudit")
    elif case == "expired":
        token = issuer.token("tfaudit", exp=int(time.time()) - 3600)
    elif case == "audience":
        token = issuer.token("sts.amazonaws.com")
    else:
        token = issuer.token("tfaudit", iss="https://evil.example")
    ident = identity_from_token(token, cfg)
    assert ident["verified"] is False and expect in ident["reason"], ident["reason"]
    assert ident["claims"]["repository"] == "acme/infra"


def test_verify_off_records_claims_as_received(issuer: Issuer) -> None:
    ident = identity_from_token(issuer.token("tfaudit"), OidcConfig(issuer=issuer.url, verify=False))
    assert ident["verified"] is False and "as received" in ident["reason"]
    assert issuer.requests == []  # no key fetch when not verifying


# --- end to end: tfaudit apply in a (simulated) GitHub Actions job ----------------------------------


@pytest.fixture
def quick(tf_workdir: Callable[[str], Path], keypair: tuple[Path, Path],
          run_tfaudit: Callable[..., CliResult]) -> dict[str, Any]:
    d = tf_workdir("quickstart")

    def apply(env: dict[str, str]) -> CliResult:
        return run_tfaudit("apply", "-auto-approve", cwd=d, env={"TFAUDIT_SIGNING_KEY": str(keypair[0]), **env})

    return {"dir": d, "apply": apply, "ledger": d / ".tfaudit" / "ledger.jsonl"}


@pytest.mark.slow
@pytest.mark.terraform
def test_apply_records_verified_claims_and_never_the_token(issuer: Issuer, quick: dict[str, Any]) -> None:
    (quick["dir"] / ".tfaudit.hcl").write_text(f'oidc {{\n  issuer = "{issuer.url}"\n}}\n')
    res = quick["apply"](github_env(issuer))
    assert res.returncode == 0, res.output
    started = next(r for r in read_ledger(quick["ledger"]) if r["type"] == "run.started")
    oidc = started["actor"]["ci"]["oidc"]
    assert oidc["verified"] is True and oidc["issuer"] == issuer.url
    claims = oidc["claims"]
    assert (claims["repository"], claims["ref"], claims["workflow"], claims["actor"], claims["run_id"]) == (
        "acme/infra", "refs/heads/main", "deploy", "octocat", "4242")
    token_req = next(r for r in issuer.requests if r["path"] == "/token")
    assert token_req["query"]["audience"] == ["tfaudit"] and token_req["query"]["api-version"] == ["2.0"]
    # never the token, never the request credential: not in the ledger, not in the output
    assert issuer.issued
    text = quick["ledger"].read_text() + res.output
    for secret in (*issuer.issued, REQUEST_TOKEN, issuer.issued[0].split(".")[2]):
        assert secret not in text


@pytest.mark.slow
@pytest.mark.terraform
def test_token_endpoint_failure_never_fails_the_run(issuer: Issuer, quick: dict[str, Any]) -> None:
    env = github_env(issuer, ACTIONS_ID_TOKEN_REQUEST_TOKEN="wrong-credential-value")
    res = quick["apply"](env)
    assert res.returncode == 0, res.output
    oidc = read_ledger(quick["ledger"])[0]["actor"]["ci"]["oidc"]
    assert oidc["verified"] is False and "HTTP 401" in oidc["reason"]
    assert "wrong-credential-value" not in quick["ledger"].read_text() + res.output


# --- the cross-check ------------------------------------------------------------------------------
def _findings(ledger: Path) -> list[dict[str, Any]]:
    return [f for r in read_ledger(ledger) if r["type"] == "run.started" for f in r.get("findings", [])]


@pytest.mark.slow
@pytest.mark.terraform
def test_laptop_apply_to_a_ci_only_account_is_a_finding(quick: dict[str, Any], moto_server: Any) -> None:
    (quick["dir"] / ".tfaudit.hcl").write_text(f'expect {{\n  ci_only_accounts = ["{MOTO_ACCOUNT}"]\n}}\n')
    res = quick["apply"](moto_server.aws_env())
    assert res.returncode == 0, res.output  # "warn" records and reports, but lets it through
    assert f"identity.outside_ci: change to AWS account {MOTO_ACCOUNT}, which only CI may change" in res.stderr
    (f,) = _findings(quick["ledger"])
    assert f["rule"] == "identity.outside_ci" and f["severity"] == "high" and "outside CI (by alice" in f["message"]
    started = read_ledger(quick["ledger"])[0]
    assert started["actor"]["cloud"]["aws"]["account"] == MOTO_ACCOUNT


@pytest.mark.slow
@pytest.mark.terraform
def test_deny_blocks_the_laptop_and_lets_verified_ci_through(issuer: Issuer, quick: dict[str, Any],
                                                             moto_server: Any) -> None:
    (quick["dir"] / ".tfaudit.hcl").write_text(
        f'oidc {{\n  issuer = "{issuer.url}"\n}}\n'
        f'expect {{\n  ci_only_accounts = ["{MOTO_ACCOUNT}"]\n  ci_repositories = ["acme/infra"]\n'
        f'  ci_refs = ["refs/heads/main"]\n  require_oidc = true\n  on_mismatch = "deny"\n}}\n')
    laptop = quick["apply"](moto_server.aws_env())
    assert laptop.returncode == 5, laptop.output
    assert "blocked: change to AWS account" in laptop.stderr
    assert not (quick["dir"] / "terraform.tfstate").exists()  # nothing applied

    # CI whose environment claims acme/infra, but whose verified token says otherwise
    issuer.claims_override = {"repository": "acme/fork"}
    spoofed = quick["apply"]({**moto_server.aws_env(), **github_env(issuer)})
    assert spoofed.returncode == 5
    assert "identity.oidc_mismatch" in spoofed.stderr and "acme/fork" in spoofed.stderr

    issuer.claims_override = {}
    ci = quick["apply"]({**moto_server.aws_env(), **github_env(issuer)})
    assert ci.returncode == 0, ci.output
    assert (quick["dir"] / "terraform.tfstate").exists()
    statuses = [r["outcome"]["status"] for r in read_ledger(quick["ledger"]) if r["type"] == "run.finished"]
    assert statuses == ["blocked", "blocked", "succeeded"]
    last_start = [r for r in read_ledger(quick["ledger"]) if r["type"] == "run.started"][-1]
    assert "findings" not in last_start or last_start["findings"] == []


@pytest.mark.slow
@pytest.mark.terraform
def test_unverified_ci_counts_as_outside_ci(quick: dict[str, Any], moto_server: Any) -> None:
    (quick["dir"] / ".tfaudit.hcl").write_text(
        f'expect {{\n  ci_only_accounts = ["{MOTO_ACCOUNT}"]\n  require_oidc = true\n}}\n')
    env = {**moto_server.aws_env(), "GITHUB_ACTIONS": "true", "GITHUB_REPOSITORY": "acme/infra"}
    res = quick["apply"](env)  # CI variables set by hand, no id-token permission
    assert res.returncode == 0
    rules = [f["rule"] for f in _findings(quick["ledger"])]
    assert rules == ["identity.ci_unverified", "identity.outside_ci"]


def test_expect_block_is_validated(tmp_path: Path, run_tfaudit: Callable[..., CliResult]) -> None:
    cfg = tmp_path / ".tfaudit.hcl"
    cfg.write_text('expect {\n  ci_only_accounts = ["12345"]\n}\n')
    res = run_tfaudit("config", "validate", str(cfg))
    assert res.returncode == 64 and "'12345' is not an AWS account id" in res.stderr
    cfg.write_text('expect {\n  on_mismatch = "block"\n}\n')
    res = run_tfaudit("config", "validate", str(cfg))
    assert res.returncode == 64 and 'on_mismatch must be "warn" or "deny"' in res.stderr
    cfg.write_text('oidc {\n  issuer = "http://token.example.com"\n}\n')
    res = run_tfaudit("config", "validate", str(cfg))
    assert res.returncode == 64 and "must be an https:// URL" in res.stderr
