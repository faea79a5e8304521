"""Built-in risk rules. Each reads one resource change, before against after.

A rule flags what the change makes worse: an exposure that already existed before the
change is not reported again, a pure delete is still read (its `before`), and values
terraform only knows after apply are never guessed at. Rules are plain functions
registered per resource type (or for every type); each yields (rule id, message) pairs
and the engine adds severity, effect, waivers and overrides.
"""

from __future__ import annotations

import fnmatch
import json
import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from functools import lru_cache
from typing import Any

from tfaudit.analysis.model import RuleInfo, Severity
from tfaudit.parse.plan import ResourceChange

Hit = tuple[str, str]  # (rule id, message)
Check = Callable[[ResourceChange], Iterator[Hit]]

S = Severity
RULES: dict[str, RuleInfo] = {r.id: r for r in (
    # destruction
    RuleInfo("destroy.delete", S.MEDIUM, "destruction", "Resource deleted",
             "Deleting removes the object and anything it holds; check nothing still depends on it."),
    RuleInfo("destroy.replace", S.MEDIUM, "destruction", "Resource replaced (delete, then create)",
             "The old object is deleted before its successor exists: downtime, and new identifiers."),
    RuleInfo("destroy.replace-cbd", S.LOW, "destruction", "Resource replaced (create_before_destroy)",
             "The successor exists before the old object goes (lower risk), but identifiers still change."),
    RuleInfo("destroy.forget", S.LOW, "destruction", "Resource forgotten",
             "The object keeps running but terraform, and this audit trail, stop tracking it."),
    RuleInfo("destroy.stateful-delete", S.HIGH, "destruction", "Stateful resource deleted",
             "Deleting a database, bucket, volume, file system, key, DNS zone or log group destroys its data."),
    RuleInfo("destroy.stateful-replace", S.HIGH, "destruction", "Stateful resource replaced",
             "The successor of a replaced database, bucket, volume, key or zone starts empty: data does not move."),
    # network exposure
    RuleInfo("network.world-ingress-admin", S.CRITICAL, "network", "SSH/RDP open to the internet",
             "SSH (22) or RDP (3389) reachable from any address invites brute force and exploits."),
    RuleInfo("network.world-ingress-all", S.CRITICAL, "network", "All ports open to the internet",
             "Every port and protocol reachable from any address exposes whatever listens."),
    RuleInfo("network.world-ingress-database", S.HIGH, "network", "Database port open to the internet",
             "Databases and caches (3306, 5432, 1433, 1521, 6379, 27017, 9200, ...) are not meant to face the internet."),
    RuleInfo("network.world-ingress", S.MEDIUM, "network", "Port open to the internet",
             "A port reachable from any address: make sure the service behind it is meant to be public."),
    RuleInfo("network.world-ingress-web", S.LOW, "network", "HTTP/HTTPS open to the internet",
             "Web ports (80, 443) open to any address: expected for public endpoints, worth a look otherwise."),
    # identity
    RuleInfo("iam.admin-policy-attached", S.CRITICAL, "identity", "Admin-level managed policy attached",
             "AdministratorAccess, PowerUserAccess, IAMFullAccess and the like grant (nearly) everything."),
    RuleInfo("iam.policy-full-admin", S.CRITICAL, "identity", "Policy allows every action on every resource",
             "Allow '*' on '*' is full administrator access under another name."),
    RuleInfo("iam.policy-wildcard-action", S.HIGH, "identity", "Policy allows every action of a service",
             "Allowing '*', 'service:*' or NotAction grants far more than any task needs, including future actions."),
    RuleInfo("iam.policy-wildcard-resource", S.LOW, "identity", "Policy allows actions on every resource",
             "Resource '*' reaches resources the policy's author never meant, now and later."),
    RuleInfo("iam.trust-any-principal", S.CRITICAL, "identity", "Role can be assumed by anyone",
             "A trust policy allowing principal '*' without a Condition lets any AWS account assume the role."),
    # data exposure
    RuleInfo("data.public-access-block-removed", S.HIGH, "data", "S3 public access block removed or relaxed",
             "Without the block, one ACL or bucket policy mistake makes the data public."),
    RuleInfo("data.public-acl", S.HIGH, "data", "Public ACL",
             "A public-read/-write or AllUsers/AuthenticatedUsers ACL lets anyone read (or write) the data."),
    RuleInfo("data.public-policy", S.HIGH, "data", "Resource policy allows any principal",
             "A bucket, queue, topic, key or repository policy allowing principal '*' without a Condition is public."),
    RuleInfo("data.encryption-removed", S.HIGH, "data", "Encryption removed or disabled",
             "Data written after this change is stored without the encryption it had."),
    # the audit trail itself
    RuleInfo("audit.cloudtrail-deleted", S.CRITICAL, "audit-trail", "CloudTrail trail deleted",
             "Without the trail, API activity in the account is no longer recorded."),
    RuleInfo("audit.cloudtrail-logging-disabled", S.CRITICAL, "audit-trail", "CloudTrail logging stopped",
             "A trail with logging off records nothing; a classic first step of an intruder."),
    RuleInfo("audit.flow-log-deleted", S.HIGH, "audit-trail", "VPC flow log deleted",
             "Network traffic in the VPC/subnet/interface is no longer recorded."),
    RuleInfo("audit.log-group-deleted", S.HIGH, "audit-trail", "Log group deleted",
             "Deleting a CloudWatch log group deletes every log event it holds."),
    RuleInfo("audit.object-lock-disabled", S.HIGH, "audit-trail", "S3 Object Lock removed",
             "Without Object Lock, stored objects (often audit logs) can be overwritten or deleted."),
    RuleInfo("audit.versioning-disabled", S.HIGH, "audit-trail", "S3 versioning suspended or removed",
             "Without versioning, overwritten or deleted objects cannot be recovered."),
    RuleInfo("audit.kms-key-deletion", S.CRITICAL, "audit-trail", "KMS key deletion scheduled",
             "Once the key is gone, everything encrypted with it is unreadable for good."),
    RuleInfo("audit.kms-key-disabled", S.HIGH, "audit-trail", "KMS key disabled",
             "Nothing encrypted with a disabled key can be read until it is enabled again."),
    RuleInfo("audit.kms-rotation-disabled", S.MEDIUM, "audit-trail", "KMS key rotation disabled",
             "Without rotation the same key material protects the data indefinitely."),
    # sensitive values
    RuleInfo("sensitive.changed", S.LOW, "sensitive", "Sensitive value changed",
             "A value terraform marks sensitive changes; its value is hidden, so confirm the change is intended."),
)}

# Findings raised outside the per-resource rules (state checks, config), same table.
RULES.update({r.id: r for r in (
    RuleInfo("state.out-of-band", S.HIGH, "state", "State changed outside tfaudit",
             "The state moved without an audit record: terraform apply, state rm or state push ran outside tfaudit."),
    RuleInfo("waiver.expired", S.MEDIUM, "policy", "Waiver expired",
             "A waiver past its expiry date no longer silences its finding; renew or remove it."),
    RuleInfo("check.failed", S.MEDIUM, "checks", "Check or condition failing",
             "A check block, precondition, postcondition or output condition evaluates false (or errors): "
             "terraform only warns about a check block, so the assumption it guards no longer holds."),
    RuleInfo("plan.errored", S.HIGH, "plan", "The plan errored",
             "terraform could not finish planning: the changes listed are incomplete and the plan cannot be "
             "applied; an analysis of it can miss what the full plan would do."),
)})


# --- reading values ------------------------------------------------------------------------------
def _get(obj: Any, key: str) -> Any:
    return obj.get(key) if isinstance(obj, dict) else None


def _first(obj: Any, key: str) -> Any:
    """A nested block (a list of one object in the plan) or an object attribute."""
    v = _get(obj, key)
    if isinstance(v, list):
        return v[0] if v and isinstance(v[0], dict) else None
    return v if isinstance(v, dict) else None


def _blocks(obj: Any, key: str) -> list[Mapping[str, Any]]:
    v = _get(obj, key)
    if isinstance(v, list):
        return [b for b in v if isinstance(b, dict)]
    return [v] if isinstance(v, dict) else []


def _strs(v: Any) -> list[str]:
    if isinstance(v, str):
        return [v]
    if isinstance(v, list):
        return [x for x in v if isinstance(x, str)]
    return []


def _is_delete(ch: ResourceChange) -> bool:
    return "delete" in ch.actions


def _delete_first(ch: ResourceChange) -> bool:
    return ch.actions in (("delete",), ("delete", "create"))


# --- destruction ---------------------------------------------------------------------------------
STATEFUL_PATTERNS: tuple[str, ...] = (
    "aws_db_instance", "aws_rds_cluster", "aws_rds_global_cluster", "aws_docdb_cluster", "aws_neptune_cluster",
    "aws_redshift_cluster", "aws_redshiftserverless_namespace", "aws_dynamodb_table", "aws_dynamodb_global_table",
    "aws_elasticache_cluster", "aws_elasticache_replication_group", "aws_memorydb_cluster",
    "aws_opensearch_domain", "aws_elasticsearch_domain", "aws_s3_bucket", "aws_s3_directory_bucket",
    "aws_ebs_volume", "aws_ebs_snapshot", "aws_efs_file_system", "aws_fsx_*", "aws_backup_vault",
    "aws_glacier_vault", "aws_kms_key", "aws_kms_replica_key", "aws_route53_zone", "aws_cloudwatch_log_group",
    "aws_secretsmanager_secret", "aws_ecr_repository", "aws_kinesis_stream", "aws_sqs_queue", "aws_msk_cluster",
    "aws_timestreamwrite_database", "aws_qldb_ledger", "aws_keyspaces_table",
    "google_sql_database_instance", "google_sql_database", "google_storage_bucket", "google_compute_disk",
    "google_kms_crypto_key", "google_kms_key_ring", "google_dns_managed_zone", "google_bigquery_dataset",
    "google_bigquery_table", "google_spanner_instance", "google_spanner_database", "google_filestore_instance",
    "google_bigtable_instance", "google_redis_instance", "google_alloydb_cluster", "google_secret_manager_secret",
    "azurerm_storage_account", "azurerm_storage_container", "azurerm_managed_disk", "azurerm_key_vault",
    "azurerm_key_vault_key", "azurerm_dns_zone", "azurerm_private_dns_zone", "azurerm_cosmosdb_account",
    "azurerm_mssql_server", "azurerm_mssql_database", "azurerm_postgresql_*server", "azurerm_mysql_*server",
    "azurerm_redis_cache", "azurerm_log_analytics_workspace",
)
_STATEFUL_RE = re.compile("|".join(fnmatch.translate(p) for p in STATEFUL_PATTERNS))


@lru_cache(maxsize=4096)
def is_stateful(rtype: str) -> bool:
    return _STATEFUL_RE.match(rtype) is not None


def check_destruction(ch: ResourceChange) -> Iterator[Hit]:
    acts = ch.actions
    if len(acts) == 2 and acts != ("create", "forget"):
        cbd = acts == ("create", "delete")
        order = "create_before_destroy: create, then delete" if cbd else "delete, then create"
        reason = f"; {ch.action_reason}" if ch.action_reason else ""
        if is_stateful(ch.type):
            yield "destroy.stateful-replace", f"replaced ({order}{reason}): the new {ch.type} starts without the old one's data"
        else:
            yield ("destroy.replace-cbd" if cbd else "destroy.replace"), f"replaced ({order}{reason})"
    elif acts == ("delete",):
        reason = f" ({ch.action_reason})" if ch.action_reason else ""
        if is_stateful(ch.type):
            yield "destroy.stateful-delete", f"{ch.type} deleted{reason}, with the data it holds"
        else:
            yield "destroy.delete", f"deleted{reason}"
    elif acts in (("forget",), ("create", "forget")):
        yield "destroy.forget", "removed from the state but left running (forget)"


# --- network exposure ----------------------------------------------------------------------------
WORLD_V4 = "0.0.0.0/0"
WORLD_V6 = "::/0"
_WORLD = frozenset({WORLD_V4, WORLD_V6})
ADMIN_PORTS = {22: "SSH", 3389: "RDP"}
DB_PORTS = {3306: "MySQL", 5432: "PostgreSQL", 1433: "SQL Server", 1521: "Oracle", 6379: "Redis",
            11211: "Memcached", 27017: "MongoDB", 9200: "Elasticsearch", 9042: "Cassandra", 5984: "CouchDB",
            2379: "etcd", 8086: "InfluxDB", 7000: "Cassandra", 9092: "Kafka"}
WEB_PORTS = {80: "HTTP", 443: "HTTPS"}
_ALL_PROTOCOLS = frozenset({"-1", "all", "*", -1})

Exposure = tuple[str, str, int, int]  # (source, protocol, from_port, to_port)


def _port(v: Any) -> int | None:
    if isinstance(v, bool):
        return None
    if isinstance(v, int):
        return v
    if isinstance(v, str) and v.strip().lstrip("-").isdigit():
        return int(v)
    return None


def _exposure(source: str, protocol: Any, lo: Any, hi: Any) -> Exposure:
    proto = str(protocol).lower() if protocol is not None else "-1"
    if protocol in _ALL_PROTOCOLS or proto in _ALL_PROTOCOLS:
        return (source, "all", 0, 65535)
    p_lo, p_hi = _port(lo), _port(hi)
    if p_lo is None and p_hi is None:
        return (source, proto, 0, 65535)
    p_lo = p_lo if p_lo is not None else p_hi
    p_hi = p_hi if p_hi is not None else p_lo
    assert p_lo is not None and p_hi is not None
    if p_lo < 0 or p_hi < 0:  # icmp type -1 / "all ports" for a protocol
        return (source, proto, 0, 65535)
    if proto in ("icmp", "1", "icmpv6", "58"):
        return (source, proto, -1, -1)
    return (source, proto, min(p_lo, p_hi), max(p_lo, p_hi))


def _sg_rule_exposures(rule: Mapping[str, Any]) -> Iterator[Exposure]:
    for cidr in (*_strs(rule.get("cidr_blocks")), *_strs(rule.get("ipv6_cidr_blocks"))):
        if cidr in _WORLD:
            yield _exposure(cidr, rule.get("protocol"), rule.get("from_port"), rule.get("to_port"))


def _exposures(rtype: str, values: Any) -> set[Exposure]:
    """World-open ingress of one security group / rule / ACL object."""
    out: set[Exposure] = set()
    if not isinstance(values, dict):
        return out
    if rtype in ("aws_security_group", "aws_default_security_group"):
        for rule in _blocks(values, "ingress"):
            out.update(_sg_rule_exposures(rule))
    elif rtype == "aws_security_group_rule":
        if values.get("type") == "ingress":
            out.update(_sg_rule_exposures(values))
    elif rtype == "aws_vpc_security_group_ingress_rule":
        for key in ("cidr_ipv4", "cidr_ipv6"):
            if values.get(key) in _WORLD:
                out.add(_exposure(values[key], values.get("ip_protocol"), values.get("from_port"), values.get("to_port")))
    elif rtype in ("aws_network_acl", "aws_default_network_acl"):
        for entry in _blocks(values, "ingress"):
            if str(entry.get("action", "")).lower() == "allow":
                for key in ("cidr_block", "ipv6_cidr_block"):
                    if entry.get(key) in _WORLD:
                        out.add(_exposure(entry[key], entry.get("protocol"), entry.get("from_port"), entry.get("to_port")))
    elif rtype == "aws_network_acl_rule":
        if values.get("egress") is not True and str(values.get("rule_action", "")).lower() == "allow":
            for key in ("cidr_block", "ipv6_cidr_block"):
                if values.get(key) in _WORLD:
                    out.add(_exposure(values[key], values.get("protocol"), values.get("from_port"), values.get("to_port")))
    elif rtype == "google_compute_firewall":
        if str(values.get("direction") or "INGRESS").upper() == "INGRESS" and values.get("disabled") is not True:
            sources = [s for s in _strs(values.get("source_ranges")) if s in _WORLD]
            for allow in _blocks(values, "allow"):
                ports = _strs(allow.get("ports"))
                for src in sources:
                    if not ports:
                        out.add(_exposure(src, allow.get("protocol"), None, None))
                    for p in ports:
                        lo, _, hi = p.partition("-")
                        out.add(_exposure(src, allow.get("protocol"), lo, hi or lo))
    elif rtype == "azurerm_network_security_rule":
        if (str(values.get("direction", "")).lower() == "inbound" and str(values.get("access", "")).lower() == "allow"):
            srcs = [*_strs(values.get("source_address_prefix")), *_strs(values.get("source_address_prefixes"))]
            if any(s in ("*", "0.0.0.0/0", "Internet", "::/0", "Any") for s in srcs):
                ranges = [*_strs(values.get("destination_port_range")), *_strs(values.get("destination_port_ranges"))]
                for r in ranges or ["*"]:
                    if r == "*":
                        out.add(_exposure("*", values.get("protocol"), 0, 65535))
                    else:
                        lo, _, hi = r.partition("-")
                        out.add(_exposure("*", values.get("protocol"), lo, hi or lo))
    return out


def _covers(e: Exposure, port: int) -> bool:
    return e[2] <= port <= e[3]


def _describe(e: Exposure) -> str:
    src, proto, lo, hi = e
    if proto == "all":
        return f"all traffic from {src}"
    if lo == -1:
        return f"{proto} from {src}"
    ports = f"port {lo}" if lo == hi else f"ports {lo}-{hi}"
    return f"{proto} {ports} from {src}"


def classify_exposure(e: Exposure) -> tuple[str, str]:
    _, proto, lo, hi = e
    desc = _describe(e)
    if proto == "all" or (lo <= 0 and hi >= 65535):
        return "network.world-ingress-all", f"ingress open to the internet: {desc}"
    if lo == -1:
        return "network.world-ingress", f"ingress open to the internet: {desc}"
    admin = [f"{n} ({p})" for p, n in ADMIN_PORTS.items() if _covers(e, p)]
    if admin:
        return "network.world-ingress-admin", f"ingress open to the internet: {desc}, {', '.join(admin)}"
    db = [f"{n} ({p})" for p, n in DB_PORTS.items() if _covers(e, p)]
    if db:
        return "network.world-ingress-database", f"ingress open to the internet: {desc}, {', '.join(db)}"
    if lo == hi and lo in WEB_PORTS:
        return "network.world-ingress-web", f"ingress open to the internet: {desc} ({WEB_PORTS[lo]})"
    return "network.world-ingress", f"ingress open to the internet: {desc}"


def check_network(ch: ResourceChange) -> Iterator[Hit]:
    if ch.after is None:
        return
    new = _exposures(ch.type, ch.after) - _exposures(ch.type, ch.before)
    for e in sorted(new, key=lambda x: (x[2], x[3], x[1], x[0])):
        yield classify_exposure(e)


# --- identity: IAM policy documents ----------------------------------------------------------
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


# --- data exposure -----------------------------------------------------------------------------
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


# --- the audit trail itself -------------------------------------------------------------------
def check_cloudtrail(ch: ResourceChange) -> Iterator[Hit]:
    if _delete_first(ch):
        yield "audit.cloudtrail-deleted", ("trail deleted" if ch.actions == ("delete",)
                                           else "trail replaced: deleted first, so nothing is logged in between")
    elif ch.after is not None and _get(ch.before, "enable_logging") is True and _get(ch.after, "enable_logging") is False:
        yield "audit.cloudtrail-logging-disabled", "enable_logging turned off"


def check_flow_log(ch: ResourceChange) -> Iterator[Hit]:
    if _delete_first(ch):
        yield "audit.flow-log-deleted", "flow log deleted" if ch.actions == ("delete",) else "flow log replaced (deleted first)"


def check_log_group(ch: ResourceChange) -> Iterator[Hit]:
    if _is_delete(ch):
        yield "audit.log-group-deleted", ("log group deleted with its log events" if ch.actions == ("delete",)
                                          else "log group replaced: its log events are deleted")


def check_object_lock(ch: ResourceChange) -> Iterator[Hit]:
    if ch.type == "aws_s3_bucket_object_lock_configuration":
        if ch.actions == ("delete",):
            yield "audit.object-lock-disabled", "object lock configuration deleted"
        return
    # aws_s3_bucket
    if ch.actions in (("delete",), ("forget",)):
        return
    b_on = _get(ch.before, "object_lock_enabled") is True or \
        _get(_first(ch.before, "object_lock_configuration"), "object_lock_enabled") == "Enabled"
    a_on = _get(ch.after, "object_lock_enabled") is True or \
        _get(_first(ch.after, "object_lock_configuration"), "object_lock_enabled") == "Enabled"
    unknown = _get(ch.after_unknown, "object_lock_enabled") is True
    if b_on and not a_on and not unknown:
        yield "audit.object-lock-disabled", "object lock turned off for the bucket"


def _versioning_on(rtype: str, values: Any) -> bool:
    if rtype == "aws_s3_bucket_versioning":
        return bool(_get(_first(values, "versioning_configuration"), "status") == "Enabled")
    return _get(_first(values, "versioning"), "enabled") is True


def check_versioning(ch: ResourceChange) -> Iterator[Hit]:
    if not _versioning_on(ch.type, ch.before) or ch.actions == ("forget",):
        return
    if ch.actions == ("delete",):
        if ch.type == "aws_s3_bucket_versioning":
            yield "audit.versioning-disabled", "versioning configuration deleted (it was Enabled)"
        return
    if ch.type == "aws_s3_bucket_versioning":
        status = _get(_first(ch.after, "versioning_configuration"), "status")
        if status is not None and status != "Enabled":
            yield "audit.versioning-disabled", f"versioning status Enabled -> {status}"
    elif _get(_first(ch.after, "versioning"), "enabled") is False:
        yield "audit.versioning-disabled", "versioning turned off"


def check_kms(ch: ResourceChange) -> Iterator[Hit]:
    if _is_delete(ch):
        window = _get(ch.before, "deletion_window_in_days")
        extra = f" (deletion window {window} days)" if isinstance(window, int) else ""
        yield "audit.kms-key-deletion", ("key deletion scheduled" if ch.actions == ("delete",)
                                         else "key replaced: the old key is scheduled for deletion") + extra
        if ch.actions == ("delete",):
            return
    if ch.after is None or ch.type != "aws_kms_key":
        return
    if _get(ch.before, "is_enabled") is True and _get(ch.after, "is_enabled") is False:
        yield "audit.kms-key-disabled", "is_enabled turned off"
    if _get(ch.before, "enable_key_rotation") is True and _get(ch.after, "enable_key_rotation") is False:
        yield "audit.kms-rotation-disabled", "enable_key_rotation turned off"


# --- sensitive values ---------------------------------------------------------------------------
def _has_true(mask: Any) -> bool:
    t = type(mask)
    if t is dict:
        values: Iterable[Any] = mask.values()
    elif t is list:
        values = mask
    else:
        return mask is True
    for v in values:
        if v is True or ((type(v) is dict or type(v) is list) and v and _has_true(v)):
            return True
    return False


Step = str | int


def _sensitive_steps(mask: Any, prefix: tuple[Step, ...], out: list[tuple[Step, ...]]) -> None:
    if mask is True:
        out.append(prefix)
    elif type(mask) is dict:
        for k, v in mask.items():
            if v is True or (v and _has_true(v)):
                _sensitive_steps(v, (*prefix, k), out)
    elif type(mask) is list:
        for i, v in enumerate(mask):
            if v is True or (v and _has_true(v)):
                _sensitive_steps(v, (*prefix, i), out)


def _at(value: Any, steps: tuple[Step, ...]) -> Any:
    for step in steps:
        if type(step) is int:
            value = value[step] if type(value) is list and step < len(value) else None
        else:
            value = value.get(step) if type(value) is dict else None
    return value


def _path_text(steps: tuple[Step, ...]) -> str:
    out = ""
    for s in steps:
        out += f"[{s}]" if type(s) is int else (f".{s}" if out else str(s))
    return out or "(whole object)"


def check_sensitive(ch: ResourceChange) -> Iterator[Hit]:
    if ch.before is None or ch.after is None:
        return
    before_m, after_m = ch.before_sensitive, ch.after_sensitive
    if not ((before_m and _has_true(before_m)) or (after_m and _has_true(after_m))):
        return
    paths: list[tuple[Step, ...]] = []
    _sensitive_steps(before_m, (), paths)
    _sensitive_steps(after_m, (), paths)
    changed = [_path_text(p) for p in dict.fromkeys(paths)
               if _at(ch.before, p) != _at(ch.after, p) or _at(ch.after_unknown, p) is True]
    if changed:
        more = f" and {len(changed) - 5} more" if len(changed) > 5 else ""
        yield "sensitive.changed", "sensitive value changes at " + ", ".join(changed[:5]) + more + " (values hidden)"


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
