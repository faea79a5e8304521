"""IAM widening: admin policies, wildcards, trust policies open to anyone."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from functools import lru_cache
from typing import Any

from tfaudit.analysis.rules._values import Hit, _get, _strs
from tfaudit.parse.plan import ResourceChange

ADMIN_POLICIES = {
    "AdministratorAccess": "AdministratorAccess",
    "PowerUserAccess": "PowerUserAccess",
    "IAMFullAccess": "IAMFullAccess",
    "AWSOrganizationsFullAccess": "AWSOrganizationsFullAccess",
    "AdministratorAccess-Amplify": "AdministratorAccess-Amplify",
    "AdministratorAccess-AWSElasticBeanstalk": "AdministratorAccess-AWSElasticBeanstalk",
}
_ADMIN_ARN = re.compile(r"^arn:aws[a-z-]*:iam::aws:policy/(?:[A-Za-z0-9+=,.@_/-]*/)?(?P<name>[A-Za-z0-9+=,.@_-]+)$")


def admin_policy_name(arn: Any) -> str | None:
    if not isinstance(arn, str):
        return None
    m = _ADMIN_ARN.match(arn)
    if m and m.group("name") in ADMIN_POLICIES:
        return m.group("name")
    return None


@lru_cache(maxsize=2048)
def _load_policy(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return None


def statements(doc: Any) -> list[Mapping[str, Any]]:
    """The statements of a policy document given as JSON text or an object."""
    if isinstance(doc, str):
        if not doc.strip().startswith("{"):
            return []
        doc = _load_policy(doc)
    if not isinstance(doc, dict):
        return []
    st = doc.get("Statement")
    if isinstance(st, dict):
        return [st]
    if isinstance(st, list):
        return [s for s in st if isinstance(s, dict)]
    return []


def _allows(st: Mapping[str, Any]) -> bool:
    return str(st.get("Effect", "")).lower() == "allow"


def _any_principal(st: Mapping[str, Any]) -> bool:
    p = st.get("Principal")
    if p == "*":
        return True
    if isinstance(p, dict):
        return any(v == "*" or (isinstance(v, list) and "*" in v) for k, v in p.items() if k in ("AWS", "*"))
    return False


def identity_flags(doc: Any) -> set[str]:
    """Which kinds of over-broad grant an identity policy makes (rule ids)."""
    flags: set[str] = set()
    for st in statements(doc):
        if not _allows(st):
            continue
        actions = _strs(st.get("Action"))
        resources = _strs(st.get("Resource"))
        every_action = "*" in actions or ("NotAction" in st and "Action" not in st)
        every_resource = "*" in resources or ("NotResource" in st and "Resource" not in st)
        if every_action and every_resource:
            flags.add("iam.policy-full-admin")
        elif every_action or any(a.endswith(":*") for a in actions):
            flags.add("iam.policy-wildcard-action")
        elif every_resource and actions:
            flags.add("iam.policy-wildcard-resource")
    return flags


def public_principal(doc: Any) -> bool:
    """An Allow statement for principal '*' without a Condition."""
    return any(_allows(st) and _any_principal(st) and not st.get("Condition") for st in statements(doc))


_IDENTITY_MESSAGES = {
    "iam.policy-full-admin": "allows every action on every resource ('*' on '*')",
    "iam.policy-wildcard-action": "allows every action of a service ('*', 'service:*' or NotAction)",
    "iam.policy-wildcard-resource": "allows actions on every resource (Resource '*')",
}
IDENTITY_POLICY_ATTRS: Mapping[str, tuple[str, ...]] = {
    "aws_iam_policy": ("policy",),
    "aws_iam_role_policy": ("policy",),
    "aws_iam_user_policy": ("policy",),
    "aws_iam_group_policy": ("policy",),
    "aws_iam_role": ("inline_policy",),
    "aws_iam_user": (),
    "aws_ssoadmin_permission_set_inline_policy": ("inline_policy",),
}


def _identity_docs(rtype: str, values: Any) -> list[Any]:
    docs: list[Any] = []
    for attr in IDENTITY_POLICY_ATTRS.get(rtype, ()):
        v = _get(values, attr)
        if attr == "inline_policy" and isinstance(v, list):
            docs.extend(_get(b, "policy") for b in v if isinstance(b, dict))
        else:
            docs.append(v)
    return docs


def check_identity_policy(ch: ResourceChange) -> Iterator[Hit]:
    if ch.after is None:
        return
    before: set[str] = set()
    for d in _identity_docs(ch.type, ch.before):
        before |= identity_flags(d)
    after: set[str] = set()
    for d in _identity_docs(ch.type, ch.after):
        after |= identity_flags(d)
    for rule in sorted(after - before):
        yield rule, f"policy {_IDENTITY_MESSAGES[rule]}"


def check_trust_policy(ch: ResourceChange) -> Iterator[Hit]:
    if ch.after is None:
        return
    if public_principal(_get(ch.after, "assume_role_policy")) and not public_principal(_get(ch.before, "assume_role_policy")):
        yield "iam.trust-any-principal", "trust policy lets any principal ('*') assume the role"


ATTACHMENT_ATTRS: Mapping[str, str] = {
    "aws_iam_role_policy_attachment": "policy_arn",
    "aws_iam_user_policy_attachment": "policy_arn",
    "aws_iam_group_policy_attachment": "policy_arn",
    "aws_iam_policy_attachment": "policy_arn",
    "aws_ssoadmin_managed_policy_attachment": "managed_policy_arn",
    "aws_iam_role": "managed_policy_arns",
    "aws_iam_role_policy_attachments_exclusive": "policy_arns",
    "aws_iam_user_policy_attachments_exclusive": "policy_arns",
    "aws_iam_group_policy_attachments_exclusive": "policy_arns",
}


def _admin_arns(rtype: str, values: Any) -> set[str]:
    attr = ATTACHMENT_ATTRS.get(rtype)
    if attr is None:
        return set()
    return {n for a in _strs(_get(values, attr)) if (n := admin_policy_name(a))}


def check_attachment(ch: ResourceChange) -> Iterator[Hit]:
    if ch.after is None:
        return
    for name in sorted(_admin_arns(ch.type, ch.after) - _admin_arns(ch.type, ch.before)):
        target = next((f"{k} {_get(ch.after, k)}" for k in ("role", "user", "group") if isinstance(_get(ch.after, k), str)), "")
        yield "iam.admin-policy-attached", f"attaches the AWS managed policy {name}" + (f" to {target}" if target else "")
