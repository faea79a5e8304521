"""Small validators for backend settings; each error names the sink block (through `err`)."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

from tfaudit.errors import ConfigError, SinkError
from tfaudit.redact import Redactor

Err = Callable[..., ConfigError]
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def req_str(err: Err, body: Mapping[str, Any], key: str) -> str:
    v = body.get(key)
    if not isinstance(v, str) or not v.strip():
        raise err(f"{key} is required (a non-empty string)")
    return v


def opt_str(err: Err, body: Mapping[str, Any], key: str, default: str | None = None) -> str | None:
    v = body.get(key, default)
    if v is not None and (not isinstance(v, str) or not v.strip()):
        raise err(f"{key} must be a non-empty string")
    return v


def opt_bool(err: Err, body: Mapping[str, Any], key: str, default: bool) -> bool:
    v = body.get(key, default)
    if not isinstance(v, bool):
        raise err(f"{key} must be true or false")
    return v


def opt_int(err: Err, body: Mapping[str, Any], key: str, default: int | None, *, minimum: int,
            maximum: int) -> int | None:
    v = body.get(key, default)
    if v is None:
        return None
    if isinstance(v, bool) or not isinstance(v, int) or not minimum <= v <= maximum:
        raise err(f"{key} must be a whole number from {minimum} to {maximum}")
    return v


def env_name(err: Err, body: Mapping[str, Any], key: str) -> str:
    v = req_str(err, body, key)
    if not _ENV_NAME.match(v):
        raise err(f"{key} must name an environment variable (letters, digits, _), not {v!r}",
                  hint="the secret itself never goes in the config file")
    return v


def aws_settings(err: Err, body: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key in ("region", "profile", "endpoint_url"):
        v = opt_str(err, body, key)
        if v is not None:
            out[key] = v
    url = out.get("endpoint_url")
    if url is not None and not re.match(r"^https?://[^\s/]+", url):
        raise err("endpoint_url must be an http(s) URL")
    return out


AWS_KEYS = frozenset({"region", "profile", "endpoint_url"})


def secret_from_env(env: Mapping[str, str], name: str, redactor: Redactor, *, what: str, hint: str) -> str:
    """A secret whose variable the config names: required, and taught to the run's redactor at once
    so it can appear in no error, log line or record from here on."""
    value = env.get(name)
    if not value:
        raise SinkError(f"the {what} variable {name} is not set", hint=f"export {name} ({hint})")
    redactor.learn(value)
    return value
