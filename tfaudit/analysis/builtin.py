"""Built-in risk rules. Each reads one resource change, before against after.

A rule flags what the change makes worse: an exposure that already existed before the
change is not reported again, a pure delete is still read (its `before`), and values
terraform only knows after apply are never guessed at. Rules are plain functions
registered per resource type (or for every type); each yields (rule id, message) pairs
and the engine adds severity, effect, waivers and overrides.
"""

from __future__ import annotations

from typing import Any

from tfaudit.analysis.rules._values import Check, Hit
from tfaudit.analysis.rules.audit_trail import (
    check_cloudtrail,
    check_flow_log,
    check_kms,
    check_log_group,
    check_object_lock,
    check_versioning,
)
from tfaudit.analysis.rules.data import (
    _ENCRYPTION_CONFIG_TYPES,
    RESOURCE_POLICY_ATTRS,
    check_encryption,
    check_public_access_block,
    check_public_acl,
    check_resource_policy,
)
from tfaudit.analysis.rules.destruction import check_destruction
from tfaudit.analysis.rules.identity import (
    ATTACHMENT_ATTRS,
    IDENTITY_POLICY_ATTRS,
    check_attachment,
    check_identity_policy,
    check_trust_policy,
)
from tfaudit.analysis.rules.network import check_network
from tfaudit.analysis.rules.sensitive import check_sensitive
from tfaudit.parse.plan import ResourceChange

# --- dispatch -------------------------------------------------------------------------------------
# Every type gets the generic rules (destruction, encryption, sensitive values); these
# add the rules of one resource type.
BY_TYPE: dict[str, tuple[Check, ...]] = {}


def _register(types: Any, *checks: Check) -> None:
    for t in types:
        BY_TYPE[t] = BY_TYPE.get(t, ()) + checks


_register(("aws_security_group", "aws_default_security_group", "aws_security_group_rule",
           "aws_vpc_security_group_ingress_rule", "aws_network_acl", "aws_default_network_acl",
           "aws_network_acl_rule", "google_compute_firewall", "azurerm_network_security_rule"), check_network)
_register((t for t, attrs in IDENTITY_POLICY_ATTRS.items() if attrs), check_identity_policy)
_register(("aws_iam_role",), check_trust_policy)
_register(ATTACHMENT_ATTRS, check_attachment)
_register(("aws_s3_bucket_public_access_block", "aws_s3_account_public_access_block"), check_public_access_block)
_register(("aws_s3_bucket_acl", "aws_s3_bucket", "aws_s3_object", "aws_s3_bucket_object"), check_public_acl)
_register(RESOURCE_POLICY_ATTRS, check_resource_policy)
_register(("aws_cloudtrail",), check_cloudtrail)
_register(("aws_flow_log",), check_flow_log)
_register(("aws_cloudwatch_log_group",), check_log_group)
_register(("aws_s3_bucket_object_lock_configuration", "aws_s3_bucket"), check_object_lock)
_register(("aws_s3_bucket_versioning", "aws_s3_bucket"), check_versioning)
_register(("aws_kms_key", "aws_kms_replica_key", "aws_kms_external_key"), check_kms)


_NOTHING_HAPPENS = (("no-op",), ("read",))


def evaluate(ch: ResourceChange) -> list[Hit]:
    """Every built-in hit for one change (before overrides, waivers and disabling).

    The generic rules are only called when they can apply: this runs once per change in
    plans of 100k changes.
    """
    acts = ch.actions
    if ch.mode != "managed" or acts in _NOTHING_HAPPENS:
        return []
    hits: list[Hit] = []
    if "delete" in acts or "forget" in acts:
        hits.extend(check_destruction(ch))
    if type(ch.before) is dict and type(ch.after) is dict:
        hits.extend(check_encryption(ch))
        if ch.before_sensitive or ch.after_sensitive:
            hits.extend(check_sensitive(ch))
    elif ch.type in _ENCRYPTION_CONFIG_TYPES:
        hits.extend(check_encryption(ch))
    specific = BY_TYPE.get(ch.type)
    if specific:
        for check in specific:
            hits.extend(check(ch))
    return hits
