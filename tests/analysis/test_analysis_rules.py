"""Built-in rules, one change at a time: each rule by id and severity, before against after.

The changes are `resource_changes` elements in the exact shape `terraform show -json`
writes for the AWS provider (attribute names and nested blocks as in 5.100.0); the
end-to-end flags on plans from real terraform live in test_analysis_aws.py.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from tfaudit.analysis.rules.catalog import RULES
from tfaudit.analysis.engine import Analyzer
from tfaudit.analysis.model import Severity
from tfaudit.parse.plan import ResourceChange, resource_change_from_json


def change(rtype: str, actions: list[str], before: Any = None, after: Any = None, *, name: str = "x",
           address: str | None = None, unknown: Any = None, before_sensitive: Any = None,
           after_sensitive: Any = None, reason: str | None = None, mode: str = "managed") -> ResourceChange:
    obj: dict[str, Any] = {
        "address": address or f"{rtype}.{name}", "mode": mode, "type": rtype, "name": name,
        "provider_name": "registry.terraform.io/hashicorp/aws",
        "change": {"actions": actions, "before": before, "after": after, "after_unknown": unknown or {},
                   "before_sensitive": before_sensitive if before_sensitive is not None else ({} if before else False),
                   "after_sensitive": after_sensitive if after_sensitive is not None else ({} if after else False)},
    }
    if reason:
        obj["action_reason"] = reason
    return resource_change_from_json(obj, "resource_changes[0]", "test")


def findings(ch: ResourceChange) -> dict[str, tuple[Severity, str]]:
    return {f.rule: (f.severity, f.message) for f in Analyzer().check(ch)}


def rules(ch: ResourceChange) -> set[str]:
    return set(findings(ch))


def sg(*ingress: dict[str, Any]) -> dict[str, Any]:
    return {"name": "web", "vpc_id": "vpc-1", "egress": [], "ingress": [
        {"cidr_blocks": [], "ipv6_cidr_blocks": [], "description": "", "prefix_list_ids": [], "protocol": "tcp",
         "security_groups": [], "self": False, **i} for i in ingress]}


def policy(*statements: dict[str, Any]) -> str:
    return json.dumps({"Version": "2012-10-17", "Statement": list(statements)})


# --- destruction -----------------------------------------------------------------------------------
def test_delete_of_an_ordinary_resource_is_medium_and_of_a_stateful_one_high_instead() -> None:
    f = findings(change("aws_instance", ["delete"], {"id": "i-1"}, reason="delete_because_no_resource_config"))
    assert f == {"destroy.delete": (Severity.MEDIUM, "deleted (delete_because_no_resource_config)")}
    f = findings(change("aws_db_instance", ["delete"], {"id": "db-1", "storage_encrypted": True}))
    assert set(f) == {"destroy.stateful-delete"} and f["destroy.stateful-delete"][0] is Severity.HIGH


@pytest.mark.parametrize("actions,rule,severity", [
    (["delete", "create"], "destroy.replace", Severity.MEDIUM),
    (["create", "delete"], "destroy.replace-cbd", Severity.LOW),
])
def test_replace_both_orders_with_the_reason(actions: list[str], rule: str, severity: Severity) -> None:
    f = findings(change("aws_instance", actions, {"ami": "a"}, {"ami": "b"}, reason="replace_because_cannot_update"))
    assert f[rule][0] is severity
    assert "replace_because_cannot_update" in f[rule][1]
    assert ("create_before_destroy" in f[rule][1]) is (actions[0] == "create")


def test_replacing_a_stateful_resource_is_high_even_with_create_before_destroy() -> None:
    f = findings(change("aws_s3_bucket", ["create", "delete"], {"bucket": "a"}, {"bucket": "b"}))
    assert f["destroy.stateful-replace"][0] is Severity.HIGH and "destroy.replace-cbd" not in f


def test_forget_is_flagged_and_reads_and_no_ops_are_not() -> None:
    assert rules(change("aws_instance", ["forget"], {"id": "i-1"})) == {"destroy.forget"}
    assert rules(change("aws_instance", ["no-op"], {"id": "i-1"}, {"id": "i-1"})) == set()
    assert rules(change("aws_iam_policy_document", ["read"], None, {"json": "{}"}, mode="data")) == set()


def test_unknown_resource_types_get_the_generic_rules() -> None:
    assert rules(change("acme_widget", ["delete"], {"id": "w"})) == {"destroy.delete"}
    f = findings(change("acme_vault", ["update"], {"encrypted": True, "n": 1}, {"encrypted": False, "n": 2}))
    assert f["data.encryption-removed"][1] == "encryption removed: encrypted turned off"


# --- network exposure ------------------------------------------------------------------------------
def test_security_group_opening_ssh_to_the_world_is_critical() -> None:
    ch = change("aws_security_group", ["create"], None, sg({"from_port": 22, "to_port": 22, "cidr_blocks": ["0.0.0.0/0"]}))
    f = findings(ch)
    assert f == {"network.world-ingress-admin": (
        Severity.CRITICAL, "ingress open to the internet: tcp port 22 from 0.0.0.0/0, SSH (22)")}


def test_only_widening_is_flagged_an_exposure_that_was_already_there_is_not() -> None:
    open_ssh = {"from_port": 22, "to_port": 22, "cidr_blocks": ["0.0.0.0/0"]}
    ch = change("aws_security_group", ["update"], sg(open_ssh), sg(open_ssh, {"from_port": 443, "to_port": 443,
                                                                               "cidr_blocks": ["10.0.0.0/8"]}))
    assert rules(ch) == set()
    ch = change("aws_security_group", ["update"], sg(open_ssh), sg(open_ssh, {"from_port": 5432, "to_port": 5432,
                                                                               "cidr_blocks": ["0.0.0.0/0"]}))
    assert findings(ch) == {"network.world-ingress-database": (
        Severity.HIGH, "ingress open to the internet: tcp port 5432 from 0.0.0.0/0, PostgreSQL (5432)")}
    # closing it again is not an exposure
    assert rules(change("aws_security_group", ["update"], sg(open_ssh), sg())) == set()


@pytest.mark.parametrize("rule_values,rule,severity", [
    ({"protocol": "-1", "from_port": 0, "to_port": 0, "cidr_blocks": ["0.0.0.0/0"]}, "network.world-ingress-all", Severity.CRITICAL),
    ({"from_port": 0, "to_port": 65535, "cidr_blocks": ["0.0.0.0/0"]}, "network.world-ingress-all", Severity.CRITICAL),
    ({"from_port": 20, "to_port": 25, "cidr_blocks": ["0.0.0.0/0"]}, "network.world-ingress-admin", Severity.CRITICAL),
    ({"from_port": 3389, "to_port": 3389, "ipv6_cidr_blocks": ["::/0"]}, "network.world-ingress-admin", Severity.CRITICAL),
    ({"from_port": 27017, "to_port": 27017, "cidr_blocks": ["0.0.0.0/0"]}, "network.world-ingress-database", Severity.HIGH),
    ({"from_port": 8080, "to_port": 8080, "cidr_blocks": ["0.0.0.0/0"]}, "network.world-ingress", Severity.MEDIUM),
    ({"from_port": 443, "to_port": 443, "cidr_blocks": ["0.0.0.0/0"]}, "network.world-ingress-web", Severity.LOW),
])
def test_ingress_is_rated_by_port(rule_values: dict[str, Any], rule: str, severity: Severity) -> None:
    f = findings(change("aws_security_group", ["create"], None, sg(rule_values)))
    assert set(f) == {rule} and f[rule][0] is severity


def test_every_aws_ingress_form_is_read() -> None:
    sg_rule = {"type": "ingress", "from_port": 22, "to_port": 22, "protocol": "tcp", "cidr_blocks": ["0.0.0.0/0"],
               "ipv6_cidr_blocks": None, "security_group_id": "sg-1"}
    assert rules(change("aws_security_group_rule", ["create"], None, sg_rule)) == {"network.world-ingress-admin"}
    assert rules(change("aws_security_group_rule", ["create"], None, {**sg_rule, "type": "egress"})) == set()
    vpc_rule = {"cidr_ipv4": None, "cidr_ipv6": "::/0", "from_port": 3306, "to_port": 3306, "ip_protocol": "tcp"}
    assert rules(change("aws_vpc_security_group_ingress_rule", ["create"], None, vpc_rule)) == {"network.world-ingress-database"}
    assert rules(change("aws_vpc_security_group_ingress_rule", ["create"], None,
                        {**vpc_rule, "ip_protocol": "-1", "from_port": None, "to_port": None})) == {"network.world-ingress-all"}
    nacl = {"ingress": [{"action": "allow", "cidr_block": "0.0.0.0/0", "ipv6_cidr_block": "", "from_port": 0,
                         "to_port": 0, "protocol": "-1", "rule_no": 100, "icmp_code": 0, "icmp_type": 0}], "egress": []}
    assert rules(change("aws_network_acl", ["create"], None, nacl)) == {"network.world-ingress-all"}
    deny = {"ingress": [{**nacl["ingress"][0], "action": "deny"}], "egress": []}
    assert rules(change("aws_network_acl", ["create"], None, deny)) == set()
    entry = {"egress": False, "rule_action": "allow", "cidr_block": "0.0.0.0/0", "from_port": 22, "to_port": 22,
             "protocol": "6", "rule_number": 100}
    assert rules(change("aws_network_acl_rule", ["create"], None, entry)) == {"network.world-ingress-admin"}
    assert rules(change("aws_network_acl_rule", ["create"], None, {**entry, "egress": True})) == set()


def test_unknown_cidrs_are_not_guessed() -> None:
    after = sg({"from_port": 22, "to_port": 22, "cidr_blocks": None})
    assert rules(change("aws_security_group", ["create"], None, after,
                        unknown={"ingress": [{"cidr_blocks": True}]})) == set()


def test_gcp_and_azure_firewalls() -> None:
    fw = {"direction": "INGRESS", "source_ranges": ["0.0.0.0/0"], "allow": [{"protocol": "tcp", "ports": ["22", "8000-8050"]}],
          "disabled": False}
    assert rules(change("google_compute_firewall", ["create"], None, fw)) == {"network.world-ingress-admin", "network.world-ingress"}
    nsr = {"direction": "Inbound", "access": "Allow", "protocol": "Tcp", "source_address_prefix": "*",
           "destination_port_range": "3389", "destination_port_ranges": None, "source_address_prefixes": None}
    assert rules(change("azurerm_network_security_rule", ["create"], None, nsr)) == {"network.world-ingress-admin"}


# --- identity -------------------------------------------------------------------------------------------
def test_admin_managed_policy_attachment_is_critical_and_read_only_is_not_flagged() -> None:
    att = {"role": "app", "policy_arn": "arn:aws:iam::aws:policy/AdministratorAccess"}
    f = findings(change("aws_iam_role_policy_attachment", ["create"], None, att))
    assert f == {"iam.admin-policy-attached": (Severity.CRITICAL, "attaches the AWS managed policy AdministratorAccess to role app")}
    assert rules(change("aws_iam_role_policy_attachment", ["create"], None,
                        {**att, "policy_arn": "arn:aws:iam::aws:policy/ReadOnlyAccess"})) == set()
    assert rules(change("aws_iam_user_policy_attachment", ["create"], None,
                        {"user": "bob", "policy_arn": "arn:aws:iam::aws:policy/IAMFullAccess"})) == {"iam.admin-policy-attached"}
    # a customer policy that only borrows the name is judged by its document, not its name
    assert rules(change("aws_iam_group_policy_attachment", ["create"], None,
                        {"group": "g", "policy_arn": "arn:aws:iam::123456789012:policy/AdministratorAccess"})) == set()
    assert rules(change("aws_iam_role", ["update"], {"name": "r", "managed_policy_arns": []},
                        {"name": "r", "managed_policy_arns": ["arn:aws:iam::aws:policy/PowerUserAccess"]})) == {"iam.admin-policy-attached"}


def test_policy_wildcards_are_rated_and_only_new_ones_flagged() -> None:
    full = policy({"Effect": "Allow", "Action": "*", "Resource": "*"})
    svc = policy({"Effect": "Allow", "Action": ["s3:*"], "Resource": "arn:aws:s3:::b/*"})
    res = policy({"Effect": "Allow", "Action": ["ec2:DescribeInstances"], "Resource": "*"})
    notaction = policy({"Effect": "Allow", "NotAction": "iam:*", "Resource": "arn:aws:s3:::b"})
    deny = policy({"Effect": "Deny", "Action": "*", "Resource": "*"})
    assert findings(change("aws_iam_policy", ["create"], None, {"policy": full}))["iam.policy-full-admin"][0] is Severity.CRITICAL
    assert rules(change("aws_iam_role_policy", ["create"], None, {"policy": svc})) == {"iam.policy-wildcard-action"}
    assert findings(change("aws_iam_user_policy", ["create"], None, {"policy": res}))["iam.policy-wildcard-resource"][0] is Severity.LOW
    assert rules(change("aws_iam_group_policy", ["create"], None, {"policy": notaction})) == {"iam.policy-wildcard-action"}
    assert rules(change("aws_iam_policy", ["create"], None, {"policy": deny})) == set()
    assert rules(change("aws_iam_policy", ["update"], {"policy": full, "description": "a"},
                        {"policy": full, "description": "b"})) == set()
    inline = {"name": "r", "assume_role_policy": policy(), "inline_policy": [{"name": "p", "policy": full}]}
    assert "iam.policy-full-admin" in rules(change("aws_iam_role", ["create"], None, inline))
    assert rules(change("aws_iam_policy", ["create"], None, {"policy": None}, unknown={"policy": True})) == set()


def test_trust_policy_open_to_any_principal() -> None:
    open_trust = policy({"Effect": "Allow", "Action": "sts:AssumeRole", "Principal": {"AWS": "*"}})
    f = findings(change("aws_iam_role", ["create"], None, {"name": "r", "assume_role_policy": open_trust}))
    assert f["iam.trust-any-principal"][0] is Severity.CRITICAL
    conditioned = policy({"Effect": "Allow", "Action": "sts:AssumeRole", "Principal": "*",
                          "Condition": {"StringEquals": {"aws:PrincipalOrgID": "o-123"}}})
    assert rules(change("aws_iam_role", ["create"], None, {"name": "r", "assume_role_policy": conditioned})) == set()


# --- data exposure ---------------------------------------------------------------------------------
PAB = {"bucket": "b", "block_public_acls": True, "block_public_policy": True, "ignore_public_acls": True,
       "restrict_public_buckets": True}


def test_public_access_block_removed_or_relaxed_but_not_created() -> None:
    f = findings(change("aws_s3_bucket_public_access_block", ["delete"], PAB))
    assert f["data.public-access-block-removed"][0] is Severity.HIGH
    assert "deleted" in f["data.public-access-block-removed"][1]
    f = findings(change("aws_s3_bucket_public_access_block", ["update"], PAB, {**PAB, "block_public_policy": False}))
    assert f == {"data.public-access-block-removed": (Severity.HIGH, "public access block relaxed: block_public_policy turned off")}
    assert rules(change("aws_s3_bucket_public_access_block", ["create"], None, PAB)) == set()
    assert rules(change("aws_s3_account_public_access_block", ["delete"], PAB)) >= {"data.public-access-block-removed"}


def test_public_acls_and_bucket_policies() -> None:
    assert rules(change("aws_s3_bucket_acl", ["create"], None, {"bucket": "b", "acl": "public-read"})) == {"data.public-acl"}
    grant = {"bucket": "b", "acl": None, "access_control_policy": [{"grant": [{"permission": "READ", "grantee": [
        {"type": "Group", "uri": "http://acs.amazonaws.com/groups/global/AllUsers"}]}], "owner": []}]}
    assert rules(change("aws_s3_bucket_acl", ["create"], None, grant)) == {"data.public-acl"}
    assert rules(change("aws_s3_bucket_acl", ["create"], None, {"bucket": "b", "acl": "private"})) == set()
    public = policy({"Effect": "Allow", "Principal": "*", "Action": "s3:GetObject", "Resource": "arn:aws:s3:::b/*"})
    f = findings(change("aws_s3_bucket_policy", ["create"], None, {"bucket": "b", "policy": public}))
    assert f["data.public-policy"][0] is Severity.HIGH
    tls_only = policy({"Effect": "Deny", "Principal": "*", "Action": "s3:*", "Resource": "*",
                       "Condition": {"Bool": {"aws:SecureTransport": "false"}}})
    assert rules(change("aws_s3_bucket_policy", ["create"], None, {"bucket": "b", "policy": tls_only})) == set()
    assert rules(change("aws_sqs_queue_policy", ["create"], None, {"queue_url": "q", "policy": public})) == {"data.public-policy"}


def test_encryption_removed_or_disabled() -> None:
    sse = {"bucket": "b", "rule": [{"apply_server_side_encryption_by_default": [{"sse_algorithm": "aws:kms"}]}]}
    assert rules(change("aws_s3_bucket_server_side_encryption_configuration", ["delete"], sse)) == {
        "data.encryption-removed", "destroy.delete"}
    f = findings(change("aws_ebs_volume", ["delete", "create"], {"encrypted": True, "kms_key_id": "arn:k", "size": 8},
                        {"encrypted": False, "kms_key_id": None, "size": 8}))
    assert f["data.encryption-removed"] == (Severity.HIGH, "encryption removed: encrypted turned off, kms_key_id removed")
    f = findings(change("aws_dynamodb_table", ["update"], {"name": "t", "server_side_encryption": [{"enabled": True, "kms_key_arn": "arn:k"}]},
                        {"name": "t", "server_side_encryption": [{"enabled": False, "kms_key_arn": ""}]}))
    assert "server_side_encryption.enabled turned off" in f["data.encryption-removed"][1]
    # a new key is not a removed one, an unknown one is not guessed
    assert rules(change("aws_sns_topic", ["update"], {"kms_master_key_id": "a"}, {"kms_master_key_id": "b"})) == set()
    assert rules(change("aws_sns_topic", ["update"], {"kms_master_key_id": "a"}, {"kms_master_key_id": None},
                        unknown={"kms_master_key_id": True})) == set()


# --- the audit trail itself -----------------------------------------------------------------------
def test_cloudtrail_deleted_or_logging_stopped() -> None:
    trail = {"name": "t", "enable_logging": True, "s3_bucket_name": "b"}
    assert findings(change("aws_cloudtrail", ["delete"], trail))["audit.cloudtrail-deleted"][0] is Severity.CRITICAL
    f = findings(change("aws_cloudtrail", ["update"], trail, {**trail, "enable_logging": False}))
    assert f == {"audit.cloudtrail-logging-disabled": (Severity.CRITICAL, "enable_logging turned off")}
    assert rules(change("aws_cloudtrail", ["create", "delete"], trail, {**trail, "name": "u"})) == {"destroy.replace-cbd"}


def test_flow_logs_log_groups_object_lock_versioning() -> None:
    assert findings(change("aws_flow_log", ["delete"], {"vpc_id": "v"}))["audit.flow-log-deleted"][0] is Severity.HIGH
    assert rules(change("aws_cloudwatch_log_group", ["delete"], {"name": "/a"})) == {
        "audit.log-group-deleted", "destroy.stateful-delete"}
    assert rules(change("aws_s3_bucket_object_lock_configuration", ["delete"], {"bucket": "b"})) == {
        "audit.object-lock-disabled", "destroy.delete"}
    v = {"bucket": "b", "versioning_configuration": [{"status": "Enabled", "mfa_delete": ""}]}
    f = findings(change("aws_s3_bucket_versioning", ["update"], v,
                        {**v, "versioning_configuration": [{"status": "Suspended", "mfa_delete": ""}]}))
    assert f == {"audit.versioning-disabled": (Severity.HIGH, "versioning status Enabled -> Suspended")}
    assert "audit.versioning-disabled" in rules(change("aws_s3_bucket_versioning", ["delete"], v))
    legacy = {"bucket": "b", "versioning": [{"enabled": True, "mfa_delete": False}], "object_lock_enabled": True}
    assert rules(change("aws_s3_bucket", ["delete", "create"], legacy,
                        {**legacy, "versioning": [{"enabled": False, "mfa_delete": False}], "object_lock_enabled": False})) == {
        "audit.versioning-disabled", "audit.object-lock-disabled", "destroy.stateful-replace"}


def test_kms_key_deletion_disable_and_rotation() -> None:
    key = {"description": "k", "deletion_window_in_days": 7, "enable_key_rotation": True, "is_enabled": True}
    f = findings(change("aws_kms_key", ["delete"], key))
    assert f["audit.kms-key-deletion"] == (Severity.CRITICAL, "key deletion scheduled (deletion window 7 days)")
    f = findings(change("aws_kms_key", ["update"], key, {**key, "enable_key_rotation": False, "is_enabled": False}))
    assert f == {"audit.kms-rotation-disabled": (Severity.MEDIUM, "enable_key_rotation turned off"),
                 "audit.kms-key-disabled": (Severity.HIGH, "is_enabled turned off")}


# --- sensitive values ------------------------------------------------------------------------------
def test_a_changed_sensitive_value_is_flagged_without_its_value() -> None:
    before = {"identifier": "db", "password": "old-Secret-1", "tags": {"a": "1"}}
    after = {"identifier": "db", "password": "new-Secret-2", "tags": {"a": "1"}}
    mask = {"password": True, "tags": {}}
    f = findings(change("aws_db_instance", ["update"], before, after, before_sensitive=mask, after_sensitive=mask))
    assert f == {"sensitive.changed": (Severity.LOW, "sensitive value changes at password (values hidden)")}
    assert "Secret" not in json.dumps([x.as_dict() for x in Analyzer().check(
        change("aws_db_instance", ["update"], before, after, before_sensitive=mask, after_sensitive=mask))])
    same = {**after, "identifier": "db2", "password": "old-Secret-1"}
    assert rules(change("aws_db_instance", ["update"], before, same, before_sensitive=mask, after_sensitive=mask)) == set()


def test_every_builtin_rule_has_an_id_severity_and_one_line_why() -> None:
    for rid, info in RULES.items():
        assert rid == info.id and "\n" not in info.why and info.why.endswith(".")
        assert info.severity in Severity
