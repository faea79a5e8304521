"""The only importer of boto3/botocore: clients built from tfaudit's settings and env.

Settings resolve the way boto3 users expect, most specific first: the config block's
`region`/`profile`/`endpoint_url`, then the environment (`AWS_PROFILE`, `AWS_REGION`,
`AWS_DEFAULT_REGION`, `AWS_ENDPOINT_URL_<SERVICE>`, `AWS_ENDPOINT_URL`, static keys), then
boto3's own chain (shared files, SSO, instance roles). Retries are botocore's "standard"
mode (exponential backoff with jitter, connection errors and throttling retried), bounded
by the caller's attempt count and timeouts.

`has_credentials` answers without importing boto3, so a run with no AWS in sight never
pays for it.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

_CREDENTIAL_ENV = (
    "AWS_ACCESS_KEY_ID",
    "AWS_PROFILE",
    "AWS_DEFAULT_PROFILE",
    "AWS_WEB_IDENTITY_TOKEN_FILE",
    "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
    "AWS_CONTAINER_CREDENTIALS_FULL_URI",
)
_PROFILE_CREDENTIAL_KEYS = ("aws_access_key_id", "credential_process", "sso_session", "sso_start_url",
                            "role_arn", "web_identity_token_file", "credential_source")


_LOADER: Any = None
_LOADER_LOCK = threading.Lock()


def _loader() -> Any:
    """botocore's data loader, one per process: it keeps endpoints.json and each service model it has
    parsed, so only the first client of a service pays for them (the S3 model alone takes 0.1-0.3 s)."""
    global _LOADER
    with _LOADER_LOCK:
        if _LOADER is None:
            from botocore.loaders import create_loader

            _LOADER = create_loader(os.environ.get("AWS_DATA_PATH"))
        return _LOADER


def warm(services: Iterable[str]) -> None:
    """Import boto3 and parse what creating clients of services will need (done in the background while
    terraform runs)."""
    import boto3  # noqa: F401 - imported now, not when the client is made

    loader = _loader()
    for name in ("endpoints", "partitions", "sdk-default-configuration"):
        loader.load_data(name)
    for service in services:
        for kind in ("service-2", "endpoint-rule-set-1"):
            loader.load_service_model(service, kind)


@dataclass(frozen=True)
class AwsSettings:
    region: str | None = None
    profile: str | None = None
    endpoint_url: str | None = None


def _home(env: Mapping[str, str]) -> Path:
    return Path(env.get("HOME") or os.path.expanduser("~"))


def has_credentials(env: Mapping[str, str], profile: str | None = None) -> bool:
    """Whether AWS credentials are configured in env or a shared file (no boto3 import, no network)."""
    if profile or any(env.get(k) for k in _CREDENTIAL_ENV):
        return True
    creds = Path(env.get("AWS_SHARED_CREDENTIALS_FILE") or _home(env) / ".aws" / "credentials")
    cfg = Path(env.get("AWS_CONFIG_FILE") or _home(env) / ".aws" / "config")
    try:
        if creds.is_file() and "aws_access_key_id" in creds.read_text("utf-8", "replace"):
            return True
        if cfg.is_file():
            text = cfg.read_text("utf-8", "replace")
            return "[default]" in text and any(k in text for k in _PROFILE_CREDENTIAL_KEYS)
    except OSError:
        return False
    return False


def _endpoint(service: str, settings: AwsSettings, env: Mapping[str, str]) -> str | None:
    if settings.endpoint_url:
        return settings.endpoint_url
    specific = {"logs": "CLOUDWATCH_LOGS"}.get(service, service.upper())
    return env.get(f"AWS_ENDPOINT_URL_{specific}") or env.get("AWS_ENDPOINT_URL") or None


def client(service: str, settings: AwsSettings, env: Mapping[str, str], *, connect_timeout: float = 5.0,
           read_timeout: float = 10.0, max_attempts: int = 3, default_region: str | None = None,
           max_pool_connections: int = 10) -> Any:
    """A boto3 client for service; raises botocore exceptions (callers convert them)."""
    import boto3
    from botocore.config import Config

    profile = settings.profile or (None if env.get("AWS_ACCESS_KEY_ID") else env.get("AWS_PROFILE")) or None
    kwargs: dict[str, Any] = {}
    if profile:
        kwargs["profile_name"] = profile
    elif env.get("AWS_ACCESS_KEY_ID") and env.get("AWS_SECRET_ACCESS_KEY"):
        kwargs["aws_access_key_id"] = env["AWS_ACCESS_KEY_ID"]
        kwargs["aws_secret_access_key"] = env["AWS_SECRET_ACCESS_KEY"]
        if env.get("AWS_SESSION_TOKEN"):
            kwargs["aws_session_token"] = env["AWS_SESSION_TOKEN"]
    import botocore.session

    core = botocore.session.get_session()
    loader = _loader()
    core.register_component("data_loader", loader)
    with _LOADER_LOCK:  # each boto3 Session appends its data directory to the loader's search path: once is enough
        session = boto3.session.Session(botocore_session=core, **kwargs)
        loader.search_paths[:] = list(dict.fromkeys(loader.search_paths))
    region = settings.region or env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION") or session.region_name or default_region
    config = Config(
        connect_timeout=connect_timeout,
        read_timeout=read_timeout,
        retries={"mode": "standard", "total_max_attempts": max(1, max_attempts)},
        user_agent_extra="tfaudit",
        max_pool_connections=max_pool_connections,
    )
    # service is chosen at run time, so the stubs' per-service overloads cannot match it
    return session.client(service, region_name=region, endpoint_url=_endpoint(service, settings, env),  # type: ignore[call-overload]
                          config=config)


def error_text(exc: BaseException) -> str:
    """A short description of a botocore/boto3 exception: the AWS error code and message when there is one."""
    response = getattr(exc, "response", None)
    if isinstance(response, Mapping):
        err = response.get("Error") or {}
        code, msg = err.get("Code"), err.get("Message")
        if code:
            return f"{code}: {msg}" if msg and msg != code else str(code)
    return f"{type(exc).__name__}: {exc}"


def error_code(exc: BaseException) -> str | None:
    response = getattr(exc, "response", None)
    if isinstance(response, Mapping):
        code = (response.get("Error") or {}).get("Code")
        return str(code) if code else None
    return None


def botocore_errors() -> tuple[type[BaseException], ...]:
    """Exception types that mean "AWS said no or could not be reached" (for `except` clauses)."""
    from boto3.exceptions import Boto3Error
    from botocore.exceptions import BotoCoreError, ClientError

    return (ClientError, BotoCoreError, Boto3Error)
