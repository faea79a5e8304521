"""`.tfaudit.hcl` into frozen dataclasses.

The config is found at --config / TFAUDIT_CONFIG, else `.tfaudit.hcl` in terraform's
working directory. Unknown blocks and keys are errors that name the file and block.

Each top-level block belongs to one feature. The core blocks (ledger, signing, redact,
identity) are parsed here; the others are parsed by the module that owns them, listed in
SECTIONS (an explicit registry, imported only when the block is present so a config
without sinks never imports a sink library).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tfaudit._hcl import is_block, load_hcl, strip_marker
from tfaudit.errors import ConfigError

CONFIG_NAME = ".tfaudit.hcl"

# block or attribute name -> "module:function(ctx: BlockContext, entries: list[Any]) -> Any"
SECTIONS: dict[str, str] = {
    "ledger": "tfaudit.config:_parse_ledger",
    "signing": "tfaudit.config:_parse_signing",
    "redact": "tfaudit.config:_parse_redact",
    "identity": "tfaudit.config:_parse_identity",
    "require_recorded_plan": "tfaudit.run.binding:parse_require_recorded_plan",
    "plan_keys": "tfaudit.run.binding:parse_plan_keys",
    "expect": "tfaudit.identity.expect:parse_expect",
    "oidc": "tfaudit.identity.oidc:parse_oidc",
    "checkpoints": "tfaudit.trail.checkpoints:parse_checkpoints",
    "sink": "tfaudit.sinks:parse_sinks",
    "delivery": "tfaudit.sinks:parse_delivery",
    "rule": "tfaudit.analysis.policy:parse_rules_blocks",
    "rules": "tfaudit.analysis.policy:parse_rules_settings",
    "waiver": "tfaudit.analysis.policy:parse_waivers",
}


@dataclass(frozen=True)
class LedgerConfig:
    path: Path | None = None
    url: str | None = None  # a shared store: s3://BUCKET/PREFIX or postgresql://...


@dataclass(frozen=True)
class SigningConfig:
    signer: str = "ed25519"
    key: Path | None = None
    options: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class RedactConfig:
    names: tuple[str, ...] = ()
    values: tuple[str, ...] = ()


@dataclass(frozen=True)
class IdentityConfig:
    user: str | None = None
    git: bool = True
    ci: bool = True
    hostname: bool = True
    aws: bool = True


@dataclass(frozen=True)
class Config:
    path: Path | None = None
    ledger: LedgerConfig = LedgerConfig()
    signing: SigningConfig = SigningConfig()
    redact: RedactConfig = RedactConfig()
    identity: IdentityConfig = IdentityConfig()
    # parsed values of blocks owned by other modules, keyed by block name
    sections: Mapping[str, Any] = field(default_factory=dict)

    def section(self, name: str, default: Any = None) -> Any:
        return self.sections.get(name, default)


@dataclass(frozen=True)
class BlockContext:
    """What a section parser needs to produce good errors and resolve relative paths."""

    file: Path
    name: str

    @property
    def base_dir(self) -> Path:
        return self.file.parent

    def error(self, message: str, *, label: str | None = None, hint: str | None = None) -> ConfigError:
        where = f'{self.name} "{label}"' if label else self.name
        return ConfigError(f"{self.file}: block {where}: {message}", hint=hint)

    def resolve(self, p: str) -> Path:
        path = Path(p).expanduser()
        return path if path.is_absolute() else self.base_dir / path


# --- helpers for section parsers --------------------------------------------------
def single_block(ctx: BlockContext, entries: list[Any]) -> dict[str, Any]:
    if len(entries) != 1:
        raise ctx.error("may appear only once")
    entry = entries[0]
    if not is_block(entry):
        raise ctx.error("must be a block: " + ctx.name + " { ... }")
    return strip_marker(entry)


def labelled_blocks(ctx: BlockContext, entries: list[Any], n_labels: int) -> list[tuple[tuple[str, ...], dict[str, Any]]]:
    """Blocks like `sink "s3" "name" { ... }` as ((labels...), body) pairs."""
    out: list[tuple[tuple[str, ...], dict[str, Any]]] = []
    for entry in entries:
        labels: list[str] = []
        node: Any = entry
        for _ in range(n_labels):
            if not isinstance(node, dict) or is_block(node) or len(node) != 1:
                raise ctx.error(f"needs {n_labels} label(s), e.g. {ctx.name} " + " ".join('"x"' for _ in range(n_labels)) + " { ... }")
            (label, node), = node.items()
            labels.append(str(label))
        if not is_block(node):
            raise ctx.error("must be a block", label=" ".join(labels))
        out.append((tuple(labels), strip_marker(node)))
    return out


def check_keys(ctx: BlockContext, body: Mapping[str, Any], allowed: set[str], *, label: str | None = None) -> None:
    unknown = sorted(set(body) - allowed)
    if unknown:
        raise ctx.error(f"unknown key {unknown[0]!r} (allowed: {', '.join(sorted(allowed))})", label=label)


def get_str(ctx: BlockContext, body: Mapping[str, Any], key: str, default: str | None = None, *, label: str | None = None) -> str | None:
    v = body.get(key, default)
    if v is not None and not isinstance(v, str):
        raise ctx.error(f"{key} must be a string", label=label)
    return v


def get_bool(ctx: BlockContext, body: Mapping[str, Any], key: str, default: bool, *, label: str | None = None) -> bool:
    v = body.get(key, default)
    if not isinstance(v, bool):
        raise ctx.error(f"{key} must be true or false", label=label)
    return v


def get_int(ctx: BlockContext, body: Mapping[str, Any], key: str, default: int | None = None, *, label: str | None = None,
            minimum: int | None = None) -> int | None:
    v = body.get(key, default)
    if v is None:
        return None
    if isinstance(v, bool) or not isinstance(v, int):
        raise ctx.error(f"{key} must be a whole number", label=label)
    if minimum is not None and v < minimum:
        raise ctx.error(f"{key} must be at least {minimum}", label=label)
    return v


def get_str_list(ctx: BlockContext, body: Mapping[str, Any], key: str, *, label: str | None = None) -> tuple[str, ...]:
    v = body.get(key, [])
    if not isinstance(v, list) or not all(isinstance(x, str) for x in v):
        raise ctx.error(f"{key} must be a list of strings", label=label)
    return tuple(v)


# --- core sections ---------------------------------------------------------------------
def _parse_ledger(ctx: BlockContext, entries: list[Any]) -> LedgerConfig:
    body = single_block(ctx, entries)
    check_keys(ctx, body, {"path", "url"})
    p, url = get_str(ctx, body, "path"), get_str(ctx, body, "url")
    if p and url:
        raise ctx.error("give the ledger a path or a url, not both")
    if url is not None and "://" not in url:
        raise ctx.error(f"url {url!r} is not a store URL (s3://BUCKET/PREFIX or postgresql://...); use path for a file")
    return LedgerConfig(ctx.resolve(p) if p else None, url or None)


def _parse_signing(ctx: BlockContext, entries: list[Any]) -> SigningConfig:
    body = single_block(ctx, entries)
    signer = get_str(ctx, body, "signer", "ed25519") or "ed25519"
    if signer == "ed25519":
        check_keys(ctx, body, {"signer", "key"})
        key = get_str(ctx, body, "key")
        return SigningConfig("ed25519", ctx.resolve(key) if key else None)
    if signer == "kms":
        check_keys(ctx, body, {"signer", "kms_key_id", "region", "profile", "endpoint_url"})
        if not get_str(ctx, body, "kms_key_id"):
            raise ctx.error('signer "kms" needs kms_key_id (a key id, ARN or alias/NAME)')
        return SigningConfig("kms", None, {k: v for k, v in body.items() if k != "signer"})
    raise ctx.error(f"signer must be \"ed25519\" or \"kms\", not {signer!r}")


def _parse_redact(ctx: BlockContext, entries: list[Any]) -> RedactConfig:
    import re

    body = single_block(ctx, entries)
    check_keys(ctx, body, {"names", "values"})
    names, values = get_str_list(ctx, body, "names"), get_str_list(ctx, body, "values")
    for pat in names + values:
        try:
            re.compile(pat)
        except re.error as e:
            raise ctx.error(f"{pat!r} is not a valid regular expression ({e})") from None
    return RedactConfig(names, values)


def _parse_identity(ctx: BlockContext, entries: list[Any]) -> IdentityConfig:
    body = single_block(ctx, entries)
    check_keys(ctx, body, {"user", "git", "ci", "hostname", "aws"})
    return IdentityConfig(
        user=get_str(ctx, body, "user"),
        git=get_bool(ctx, body, "git", True),
        ci=get_bool(ctx, body, "ci", True),
        hostname=get_bool(ctx, body, "hostname", True),
        aws=get_bool(ctx, body, "aws", True),
    )


_CORE_FIELDS = {"ledger", "signing", "redact", "identity"}


def _resolve_parser(name: str) -> Callable[[BlockContext, list[Any]], Any]:
    mod, _, fn = SECTIONS[name].partition(":")
    parser: Callable[[BlockContext, list[Any]], Any] = getattr(importlib.import_module(mod), fn)
    return parser


def parse_config(path: Path) -> Config:
    raw = load_hcl(path)
    core: dict[str, Any] = {}
    sections: dict[str, Any] = {}
    for name, entries in raw.items():
        if name not in SECTIONS:
            raise ConfigError(
                f"{path}: unknown block or setting {name!r}",
                hint="allowed: " + ", ".join(sorted(SECTIONS)),
            )
        if not isinstance(entries, list):
            entries = [entries]
        value = _resolve_parser(name)(BlockContext(path, name), entries)
        (core if name in _CORE_FIELDS else sections)[name] = value
    return Config(path=path, sections=sections, **core)


def find_config(explicit: str | None, work_dir: Path) -> Path | None:
    if explicit:
        return Path(explicit).expanduser()
    candidate = work_dir / CONFIG_NAME
    return candidate if candidate.is_file() else None


def load_config(explicit: str | None, work_dir: Path) -> Config:
    path = find_config(explicit, work_dir)
    return parse_config(path) if path else Config()
