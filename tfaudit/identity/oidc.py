"""GitHub Actions OIDC: who the CI run is, as GitHub signs it, recorded in `actor.ci.oidc`.

When a workflow grants `permissions: id-token: write`, the runner exposes
ACTIONS_ID_TOKEN_REQUEST_URL and ACTIONS_ID_TOKEN_REQUEST_TOKEN. tfaudit asks that endpoint
for a token with audience `tfaudit` (configurable), keeps the identity claims
(repository, ref, workflow, actor, run id, ...) and never the token itself: the token and
the request credential are taught to the run's redactor so they cannot leak into any log.

Unlike the CI environment variables, which anyone can set on a laptop, the claims can be
verified: the token's RS256 signature is checked against the JSON Web Key Set of the
configured issuer (default https://token.actions.githubusercontent.com, found through its
`.well-known/openid-configuration`), along with `iss`, `aud` and `exp`. The record says
`verified: true` only when all of that passed; otherwise the claims are kept as received
with `verified: false` and the reason. Collecting them never fails a run.
"""

from __future__ import annotations

import base64
import json
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from tfaudit.logs import get_logger

if TYPE_CHECKING:
    from tfaudit.config import BlockContext
    from tfaudit.redact import Redactor

log = get_logger("tfaudit")

REQUEST_URL_ENV = "ACTIONS_ID_TOKEN_REQUEST_URL"
REQUEST_TOKEN_ENV = "ACTIONS_ID_TOKEN_REQUEST_TOKEN"
GITHUB_ISSUER = "https://token.actions.githubusercontent.com"
DEFAULT_AUDIENCE = "tfaudit"
CLOCK_SKEW_SECONDS = 120
MAX_RESPONSE_BYTES = 256 * 1024

# The identity claims GitHub documents for Actions tokens; anything else is dropped.
CLAIMS = (
    "iss", "sub", "aud", "repository", "repository_id", "repository_owner", "repository_visibility",
    "ref", "ref_type", "ref_protected", "sha", "workflow", "workflow_ref", "workflow_sha",
    "job_workflow_ref", "job_workflow_sha", "actor", "actor_id", "run_id", "run_number", "run_attempt",
    "event_name", "environment", "head_ref", "base_ref", "runner_environment", "iat", "exp",
)


@dataclass(frozen=True)
class OidcConfig:
    enabled: bool = True
    audience: str = DEFAULT_AUDIENCE
    issuer: str = GITHUB_ISSUER
    verify: bool = True
    timeout_seconds: float = 5.0


def parse_oidc(ctx: BlockContext, entries: list[Any]) -> OidcConfig:
    """`oidc { enabled, audience, issuer, verify, timeout_seconds }`."""
    from tfaudit.config import check_keys, get_bool, get_int, get_str, single_block

    body = single_block(ctx, entries)
    check_keys(ctx, body, {"enabled", "audience", "issuer", "verify", "timeout_seconds"})
    issuer = (get_str(ctx, body, "issuer", GITHUB_ISSUER) or GITHUB_ISSUER).rstrip("/")
    if not issuer.startswith(("https://", "http://127.0.0.1", "http://localhost")):
        raise ctx.error(f"issuer {issuer!r} must be an https:// URL", hint=f'the default is "{GITHUB_ISSUER}"')
    return OidcConfig(
        enabled=get_bool(ctx, body, "enabled", True),
        audience=get_str(ctx, body, "audience", DEFAULT_AUDIENCE) or DEFAULT_AUDIENCE,
        issuer=issuer,
        verify=get_bool(ctx, body, "verify", True),
        timeout_seconds=float(get_int(ctx, body, "timeout_seconds", 5, minimum=1) or 5),
    )


class OidcError(Exception):
    """Internal: why claims could not be fetched or verified (becomes a recorded reason, never fatal)."""


def attach(actor: dict[str, Any], env: Mapping[str, str], config: OidcConfig | None, redactor: Redactor) -> None:
    """Add `oidc` to a GitHub Actions `actor.ci` when the workflow can mint ID tokens."""
    cfg = config or OidcConfig()
    ci = actor.get("ci")
    if not cfg.enabled or not isinstance(ci, dict) or ci.get("provider") != "github_actions":
        return
    url, bearer = env.get(REQUEST_URL_ENV, ""), env.get(REQUEST_TOKEN_ENV, "")
    if not url or not bearer:
        return  # the workflow did not grant id-token: write
    redactor.learn(bearer)
    try:
        token = fetch_token(url, bearer, cfg.audience, cfg.timeout_seconds)
    except OidcError as e:
        log.warning("oidc.unavailable", reason=str(e))
        ci["oidc"] = {"issuer": None, "verified": False, "reason": f"no token: {e}", "claims": {}}
        return
    redactor.learn(token)
    ci["oidc"] = identity_from_token(token, cfg)


def identity_from_token(token: str, cfg: OidcConfig, now: float | None = None) -> dict[str, Any]:
    """The recorded form: selected claims, whether they verified, and why not."""
    try:
        header, claims, _, _ = split_jwt(token)
    except OidcError as e:
        return {"issuer": None, "verified": False, "reason": str(e), "claims": {}}
    kept = {k: claims[k] for k in CLAIMS if k in claims and isinstance(claims[k], (str, int, bool, list))}
    reason: str | None = None
    if not cfg.verify:
        reason = "not verified: oidc.verify = false (claims as received)"
    else:
        try:
            verify_token(token, cfg, now=now)
        except OidcError as e:
            reason = f"not verified: {e}"
    if reason:
        log.warning("oidc.unverified", reason=reason)
    return {"issuer": claims.get("iss"), "verified": reason is None, "reason": reason,
            "key_id": header.get("kid"), "claims": kept}


# --- fetching ---------------------------------------------------------------------------------
def fetch_token(request_url: str, bearer: str, audience: str, timeout: float) -> str:
    sep = "&" if "?" in request_url else "?"
    url = f"{request_url}{sep}audience={urllib.parse.quote(audience, safe='')}"
    doc = _get_json(url, timeout, headers={"Authorization": f"bearer {bearer}", "Accept": "application/json"},
                    what="the token endpoint")
    value = doc.get("value") if isinstance(doc, Mapping) else None
    if not isinstance(value, str) or value.count(".") != 2:
        raise OidcError("the token endpoint returned no JWT")
    return value


def _get_json(url: str, timeout: float, *, headers: Mapping[str, str] | None = None, what: str) -> Any:
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("https", "http"):
        raise OidcError(f"{what} URL is not http(s)")
    req = urllib.request.Request(url, headers=dict(headers or {}), method="GET")
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:  # noqa: S310 - scheme checked above
            body = resp.read(MAX_RESPONSE_BYTES + 1)
    except urllib.error.HTTPError as e:
        # Never echo the URL: the token endpoint's carries a run-scoped credential.
        raise OidcError(f"{what} answered HTTP {e.code}") from None
    except (urllib.error.URLError, OSError, TimeoutError) as e:
        reason = getattr(e, "reason", e)
        raise OidcError(f"{what} could not be reached ({type(reason).__name__})") from None
    if len(body) > MAX_RESPONSE_BYTES:
        raise OidcError(f"{what} answered with more than {MAX_RESPONSE_BYTES} bytes")
    try:
        return json.loads(body)
    except ValueError:
        raise OidcError(f"{what} did not answer JSON") from None


# --- JWT ------------------------------------------------------------------------------------
def _b64url(part: str) -> bytes:
    try:
        return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))
    except (ValueError, TypeError):
        raise OidcError("the token is not base64url") from None


def split_jwt(token: str) -> tuple[dict[str, Any], dict[str, Any], bytes, bytes]:
    """(header, claims, signing input, signature) of a compact JWS; no checks yet."""
    parts = token.split(".")
    if len(parts) != 3:
        raise OidcError("the token is not a JWT")
    try:
        header = json.loads(_b64url(parts[0]))
        claims = json.loads(_b64url(parts[1]))
    except ValueError:
        raise OidcError("the token's header or claims are not JSON") from None
    if not isinstance(header, dict) or not isinstance(claims, dict):
        raise OidcError("the token's header or claims are not JSON objects")
    return header, claims, f"{parts[0]}.{parts[1]}".encode("ascii"), _b64url(parts[2])


def verify_token(token: str, cfg: OidcConfig, *, now: float | None = None,
                 jwks: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Check signature (RS256, key from the issuer's JWKS), iss, aud and exp; return the claims."""
    header, claims, signing_input, signature = split_jwt(token)
    if header.get("alg") != "RS256":
        raise OidcError(f"unsupported signature algorithm {header.get('alg')!r} (RS256 expected)")
    if claims.get("iss") != cfg.issuer:
        raise OidcError(f"issuer {claims.get('iss')!r} is not the configured {cfg.issuer!r}")
    aud = claims.get("aud")
    if cfg.audience not in (aud if isinstance(aud, list) else [aud]):
        raise OidcError(f"audience {aud!r} does not include {cfg.audience!r}")
    t = time.time() if now is None else now
    exp, nbf = claims.get("exp"), claims.get("nbf")
    if not isinstance(exp, (int, float)) or exp + CLOCK_SKEW_SECONDS < t:
        raise OidcError("the token has expired")
    if isinstance(nbf, (int, float)) and nbf - CLOCK_SKEW_SECONDS > t:
        raise OidcError("the token is not valid yet")
    keys = jwks if jwks is not None else fetch_jwks(cfg)
    key = _find_key(keys, header.get("kid"))
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import padding, rsa

    try:
        n = int.from_bytes(_b64url(str(key["n"])), "big")
        e = int.from_bytes(_b64url(str(key["e"])), "big")
        public = rsa.RSAPublicNumbers(e, n).public_key()
        public.verify(signature, signing_input, padding.PKCS1v15(), hashes.SHA256())
    except (KeyError, ValueError):
        raise OidcError("the issuer's key is not a usable RSA key") from None
    except InvalidSignature:
        raise OidcError("the token's signature does not match the issuer's key") from None
    return claims


def fetch_jwks(cfg: OidcConfig) -> Mapping[str, Any]:
    discovery = _get_json(f"{cfg.issuer}/.well-known/openid-configuration", cfg.timeout_seconds,
                          what="the issuer's openid-configuration")
    jwks_uri = discovery.get("jwks_uri") if isinstance(discovery, Mapping) else None
    if not isinstance(jwks_uri, str):
        raise OidcError("the issuer's openid-configuration has no jwks_uri")
    # The keys must come from the issuer we trust, not wherever its document points.
    if _origin(jwks_uri) != _origin(cfg.issuer):
        raise OidcError("the issuer's jwks_uri is on another host")
    jwks = _get_json(jwks_uri, cfg.timeout_seconds, what="the issuer's JWKS")
    if not isinstance(jwks, Mapping) or not isinstance(jwks.get("keys"), list):
        raise OidcError("the issuer's JWKS has no keys")
    return jwks


def _origin(url: str) -> tuple[str, str]:
    p = urllib.parse.urlsplit(url)
    return p.scheme, p.netloc


def _find_key(jwks: Mapping[str, Any], kid: Any) -> Mapping[str, Any]:
    for key in jwks.get("keys") or []:
        if isinstance(key, Mapping) and key.get("kty") == "RSA" and (kid is None or key.get("kid") == kid):
            return key
    raise OidcError(f"the issuer's JWKS has no RSA key {kid!r}")
