"""Every rule id tfaudit knows: severity, category, title and why (the built-ins and the engine's own)."""

from __future__ import annotations

from tfaudit.analysis.model import RuleInfo, Severity

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
