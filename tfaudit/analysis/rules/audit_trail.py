"""The audit trail itself switched off: CloudTrail, flow logs, log groups, Object Lock, versioning, KMS."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from tfaudit.analysis.rules._values import Hit, _delete_first, _first, _get, _is_delete
from tfaudit.parse.plan import ResourceChange


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
