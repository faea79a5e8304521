"""The `checkpoints { ... }` block of `.tfaudit.hcl`, and the --checkpoints / TFAUDIT_CHECKPOINTS override."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Any

from tfaudit.config import BlockContext, Config, check_keys, get_int, get_str, labelled_blocks, single_block
from tfaudit.trail.checkpoints.destinations import (CheckpointStore, DirStore, LockMode, S3Store, WebhookStore,
                                                    store_from_location)
from tfaudit.trail.checkpoints.note import check_name

# --- config: checkpoints { ... } -----------------------------------------------------------------
class CheckpointFailure(str, Enum):
    """What a checkpoint that cannot be signed or stored does to the run's exit code."""

    WARN = "warn"
    FAIL = "fail"


@dataclass(frozen=True)
class DestinationSpec:
    kind: str
    settings: Mapping[str, Any]


@dataclass(frozen=True)
class CheckpointSettings:
    destinations: tuple[DestinationSpec, ...] = ()
    origin: str | None = None
    on_failure: CheckpointFailure = CheckpointFailure.WARN
    location: str | None = None  # --checkpoints / TFAUDIT_CHECKPOINTS, replacing the config's destinations

    def stores(self, env: Mapping[str, str]) -> list[CheckpointStore]:
        if self.location:
            return [store_from_location(self.location, env)]
        out: list[CheckpointStore] = []
        for d in self.destinations:
            s = dict(d.settings)
            if d.kind == "dir":
                out.append(DirStore(Path(s["path"])))
            elif d.kind == "s3":
                out.append(S3Store(s["bucket"], s.get("prefix", ""), s.get("retain_days", 365),
                                   LockMode(s.get("mode", "COMPLIANCE")), s.get("region"), s.get("endpoint_url"),
                                   s.get("profile"), env=env))
            else:
                out.append(WebhookStore(s["url"], s.get("headers", {}), s.get("timeout_seconds", 10)))
        return out


_DEST_KEYS = {
    "dir": {"path"},
    "s3": {"bucket", "prefix", "retain_days", "mode", "region", "endpoint_url", "profile"},
    "webhook": {"url", "headers", "timeout_seconds", "unsafe_allow_http"},
}


def parse_checkpoints(ctx: BlockContext, entries: list[Any]) -> CheckpointSettings:
    """checkpoints { origin, on_failure, destination "dir"|"s3"|"webhook" { ... } ... }"""
    body = single_block(ctx, entries)
    check_keys(ctx, body, {"origin", "on_failure", "destination"})
    origin = get_str(ctx, body, "origin")
    if origin is not None:
        check_name(origin)
    on_failure = get_str(ctx, body, "on_failure", "warn") or "warn"
    if on_failure not in ("warn", "fail"):
        raise ctx.error(f'on_failure must be "warn" or "fail", not {on_failure!r}')
    dests: list[DestinationSpec] = []
    for (kind,), dbody in labelled_blocks(ctx, body.get("destination", []), 1):
        if kind not in _DEST_KEYS:
            raise ctx.error(f"unknown destination kind {kind!r}", hint="use dir, s3 or webhook")
        check_keys(ctx, dbody, _DEST_KEYS[kind], label=kind)
        s: dict[str, Any] = {}
        if kind == "dir":
            path = get_str(ctx, dbody, "path", label=kind)
            if not path:
                raise ctx.error("needs path", label=kind)
            s["path"] = str(ctx.resolve(path))
        elif kind == "s3":
            if not get_str(ctx, dbody, "bucket", label=kind):
                raise ctx.error("needs bucket", label=kind)
            for k in ("bucket", "prefix", "region", "endpoint_url", "profile"):
                if get_str(ctx, dbody, k, label=kind) is not None:
                    s[k] = dbody[k]
            if s.get("prefix") and not s["prefix"].endswith("/"):
                s["prefix"] += "/"
            s["retain_days"] = get_int(ctx, dbody, "retain_days", 365, label=kind, minimum=0)
            mode = get_str(ctx, dbody, "mode", "COMPLIANCE", label=kind)
            if mode not in ("COMPLIANCE", "GOVERNANCE"):
                raise ctx.error(f'mode must be "COMPLIANCE" or "GOVERNANCE", not {mode!r}', label=kind)
            s["mode"] = mode
        else:
            from tfaudit.sinks._http import check_url

            url = get_str(ctx, dbody, "url", label=kind)
            if not url:
                raise ctx.error("needs url", label=kind)
            allow_http = dbody.get("unsafe_allow_http", False) is True
            problem = check_url(url, allow_http=allow_http)
            if problem:
                raise ctx.error(f"url {problem}", label=kind)
            headers = dbody.get("headers", {})
            if not isinstance(headers, dict) or not all(isinstance(v, str) for v in headers.values()):
                raise ctx.error("headers must be a map of strings", label=kind)
            s.update(url=url, headers=dict(headers),
                     timeout_seconds=get_int(ctx, dbody, "timeout_seconds", 10, label=kind, minimum=1))
        dests.append(DestinationSpec(kind, s))
    if not dests:
        raise ctx.error('needs at least one destination, e.g. destination "dir" { path = "/mnt/worm/tfaudit" }')
    return CheckpointSettings(tuple(dests), origin, CheckpointFailure(on_failure))


def resolve_settings(option: str | None, env: Mapping[str, str], cfg: Config) -> CheckpointSettings | None:
    """--checkpoints, else TFAUDIT_CHECKPOINTS, else the config's checkpoints block; None: not configured."""
    configured: CheckpointSettings | None = cfg.section("checkpoints")
    location = option or env.get("TFAUDIT_CHECKPOINTS")
    if location:
        base = configured or CheckpointSettings()
        return CheckpointSettings((), base.origin, base.on_failure, location)
    return configured


