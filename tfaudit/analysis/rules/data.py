"""Data exposure: public access blocks, public ACLs and policies, encryption removed."""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from tfaudit.analysis.rules._values import Hit, _blocks, _get
from tfaudit.analysis.rules.identity import public_principal
from tfaudit.parse.plan import ResourceChange

PAB_FLAGS = ("block_public_acls", "block_public_policy", "ignore_public_acls", "restrict_public_buckets")


def check_public_access_block(ch: ResourceChange) -> Iterator[Hit]:
    before = ch.before if isinstance(ch.before, dict) else {}
    on_before = [f for f in PAB_FLAGS if before.get(f) is True]
    if not on_before:
        return
    if ch.actions == ("delete",):
        yield "data.public-access-block-removed", "public access block deleted (it had " + ", ".join(on_before) + ")"
        return
    if ch.actions in (("forget",),):
        return
    after = ch.after if isinstance(ch.after, dict) else {}
    unknown = ch.after_unknown if isinstance(ch.after_unknown, dict) else {}
    off = [f for f in on_before if after.get(f) is not True and unknown.get(f) is not True]
    if off:
        yield "data.public-access-block-removed", "public access block relaxed: " + ", ".join(f"{f} turned off" for f in off)


PUBLIC_ACLS = frozenset({"public-read", "public-read-write", "authenticated-read"})
_PUBLIC_GRANTEES = ("http://acs.amazonaws.com/groups/global/AllUsers",
                    "http://acs.amazonaws.com/groups/global/AuthenticatedUsers")


def _public_acl(values: Any) -> str | None:
    if not isinstance(values, dict):
        return None
    acl = values.get("acl")
    if isinstance(acl, str) and acl in PUBLIC_ACLS:
        return f"canned ACL {acl}"
    grants: list[Mapping[str, Any]] = list(_blocks(values, "grant"))
    for acp in _blocks(values, "access_control_policy"):
        grants.extend(_blocks(acp, "grant"))
    for g in grants:
        uris = [_get(g, "uri")] + [_get(ge, "uri") for ge in _blocks(g, "grantee")]
        for uri in uris:
            if uri in _PUBLIC_GRANTEES:
                return f"grant to {uri.rsplit('/', 1)[-1]}"
    return None


def check_public_acl(ch: ResourceChange) -> Iterator[Hit]:
    if ch.after is None:
        return
    now = _public_acl(ch.after)
    if now and not _public_acl(ch.before):
        yield "data.public-acl", f"makes the data public: {now}"


RESOURCE_POLICY_ATTRS: Mapping[str, str] = {
    "aws_s3_bucket_policy": "policy",
    "aws_s3_bucket": "policy",
    "aws_s3_access_point": "policy",
    "aws_sqs_queue_policy": "policy",
    "aws_sqs_queue": "policy",
    "aws_sns_topic_policy": "policy",
    "aws_sns_topic": "policy",
    "aws_kms_key": "policy",
    "aws_ecr_repository_policy": "policy",
    "aws_secretsmanager_secret_policy": "policy",
    "aws_secretsmanager_secret": "policy",
    "aws_glacier_vault": "access_policy",
    "aws_opensearch_domain": "access_policies",
    "aws_elasticsearch_domain": "access_policies",
    "aws_efs_file_system_policy": "policy",
    "aws_backup_vault_policy": "policy",
    "aws_lambda_permission": "principal",
}


def check_resource_policy(ch: ResourceChange) -> Iterator[Hit]:
    if ch.after is None:
        return
    attr = RESOURCE_POLICY_ATTRS[ch.type]
    if ch.type == "aws_lambda_permission":
        if _get(ch.after, attr) == "*" and _get(ch.before, attr) != "*" and not _get(ch.after, "source_arn"):
            yield "data.public-policy", "lets any principal ('*') invoke the function"
        return
    if public_principal(_get(ch.after, attr)) and not public_principal(_get(ch.before, attr)):
        yield "data.public-policy", f"{attr} allows any principal ('*')"


_ENCRYPTION_CONFIG_TYPES = frozenset({
    "aws_s3_bucket_server_side_encryption_configuration", "aws_ebs_encryption_by_default",
})
_ENCRYPT_KEY = re.compile(r"encrypt", re.IGNORECASE)
_encrypt_names: dict[str, bool] = {}


def _encrypt_name(key: str) -> bool:
    hit = _encrypt_names.get(key)
    if hit is None:
        hit = _encrypt_names[key] = _ENCRYPT_KEY.search(key) is not None
    return hit
_KMS_KEYS = frozenset({"kms_key_id", "kms_master_key_id", "kms_key_arn", "kms_key_name", "kms_key"})


def _encryption_keys(before: dict[str, Any], rtype: str | None) -> Iterable[str]:
    """The attribute names that can carry encryption; cached per resource type (one schema per type)."""
    if rtype is None:
        return [k for k in before if k in _KMS_KEYS or _encrypt_name(k)]
    cached = _encryption_keys_by_type.get(rtype)
    if cached is None or cached[0] != len(before):
        cached = _encryption_keys_by_type[rtype] = (
            len(before), tuple(k for k in before if k in _KMS_KEYS or _encrypt_name(k)))
    return cached[1]


_encryption_keys_by_type: dict[str, tuple[int, tuple[str, ...]]] = {}


def _encryption_off(before: dict[str, Any], after: dict[str, Any], unknown: Any, prefix: str,
                    rtype: str | None = None) -> Iterator[str]:
    for k in _encryption_keys(before, rtype):
        b = before.get(k)
        if b is None or b is False:
            continue
        a = after.get(k)
        u = unknown.get(k) if isinstance(unknown, dict) else None
        if u is True:
            continue
        if b is True and a is False and _encrypt_name(k):
            yield f"{prefix}{k} turned off"
        elif k in _KMS_KEYS and isinstance(b, str) and b and (a is None or a == ""):
            yield f"{prefix}{k} removed"
        elif isinstance(b, list) and isinstance(a, list) and _encrypt_name(k):
            if b and not a and isinstance(b[0], dict):
                yield f"{prefix}{k} removed"
            elif b and a and isinstance(b[0], dict) and isinstance(a[0], dict):
                sub_u = u[0] if isinstance(u, list) and u else None
                yield from _encryption_off(b[0], a[0], sub_u, f"{prefix}{k}.")
                if b[0].get("enabled") is True and a[0].get("enabled") is False:
                    yield f"{prefix}{k}.enabled turned off"


def check_encryption(ch: ResourceChange) -> Iterator[Hit]:
    if ch.type in _ENCRYPTION_CONFIG_TYPES:
        if ch.actions == ("delete",):
            yield "data.encryption-removed", f"{ch.type} deleted"
            return
        if ch.type == "aws_ebs_encryption_by_default" and _get(ch.before, "enabled") is True \
                and _get(ch.after, "enabled") is False:
            yield "data.encryption-removed", "EBS encryption by default turned off"
            return
    if not isinstance(ch.before, dict) or not isinstance(ch.after, dict):
        return
    offs = list(_encryption_off(ch.before, ch.after, ch.after_unknown, "", ch.type))
    if offs:
        yield "data.encryption-removed", "encryption removed: " + ", ".join(offs[:5])
