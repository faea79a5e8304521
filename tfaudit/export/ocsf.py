"""One ledger record as an OCSF 1.x API Activity event (class_uid 6003, category 6 Application Activity).

Mapping: the resource's action gives the activity (create 1, update 3, delete 4; replace,
import, move and forget are 99 Other with their name); run.started/run.finished/plan.recorded
are activities of the run itself. actor.user is who ran terraform, src_endpoint the host it
ran on, api.operation the terraform operation, resources the changed resource(s), status and
status_detail the outcome, metadata the product (tfaudit and its version), the record id, the
ledger seq and the run id as correlation_uid. The record's own identifiers (run, chain,
signature key) travel in `unmapped.tfaudit` so an event can be traced back to its signed line.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from tfaudit import __version__
from tfaudit.schema import RecordType

OCSF_VERSION = "1.3.0"
CLASS_UID = 6003
CATEGORY_UID = 6

_ACTIVITY = {"create": (1, "Create"), "read": (2, "Read"), "update": (3, "Update"), "delete": (4, "Delete")}
_STATUS = {0: "Unknown", 1: "Success", 2: "Failure", 99: "Other"}
_SEVERITY = {0: "Unknown", 1: "Informational", 2: "Low", 3: "Medium", 4: "High", 5: "Critical"}
_FINDING_SEVERITY = {"info": 1, "low": 2, "medium": 3, "high": 4, "critical": 5}


def _epoch_ms(rfc3339: str) -> int:
    return int(datetime.fromisoformat(rfc3339.replace("Z", "+00:00")).timestamp() * 1000)


def _activity(record: Mapping[str, Any]) -> tuple[int, str, str]:
    """(activity_id, activity_name, api operation)."""
    rtype = record.get("type")
    run = record.get("run") or {}
    command = str(run.get("command") or "apply")
    if rtype == RecordType.RESOURCE_CHANGED:
        action = str((record.get("resource") or {}).get("action") or "other")
        aid, name = _ACTIVITY.get(action, (99, action.capitalize()))
        return aid, name, f"terraform {command}: {action}"
    if rtype == RecordType.PLAN_RECORDED:
        return 2, "Read", "terraform plan"
    if rtype == RecordType.RUN_STARTED:
        return 99, "Run Started", f"terraform {command}"
    if rtype == RecordType.RUN_FINISHED:
        return 99, "Run Finished", f"terraform {command}"
    return 99, str(rtype or "Other"), f"terraform {command}"


def _status(record: Mapping[str, Any]) -> tuple[int, str | None, str | None]:
    """(status_id, status, status_detail)."""
    rtype = record.get("type")
    if rtype == RecordType.RESOURCE_CHANGED:
        res = record.get("resource") or {}
        st = res.get("status")
        err = res.get("error") or {}
        detail = ": ".join(x for x in (err.get("summary"), err.get("detail")) if x) or None
        if st == "succeeded":
            return 1, "Success", None
        if st in ("failed", "interrupted", "incomplete"):
            return 2, "Failure", detail or st
        if st == "unknown":  # the apply events and the state disagree: OCSF's own "Unknown"
            return 0, "Unknown", detail or st
        return 99, str(st or "other").replace("_", " ").capitalize(), "terraform did not attempt this change"
    if rtype == RecordType.RUN_FINISHED:
        out = record.get("outcome") or {}
        st = out.get("status")
        counts = out.get("counts") or {}
        detail = out.get("reason") or (", ".join(f"{v} {k}" for k, v in sorted(counts.items()) if v) or None)
        if st == "succeeded":
            return 1, "Success", detail
        return (2, "Failure", f"{st}: {detail}" if detail else st) if st else (0, "Unknown", None)
    if rtype == RecordType.PLAN_RECORDED:
        return 1, "Success", None
    return 0, "Unknown", "intent recorded before terraform applied anything" if rtype == RecordType.RUN_STARTED else None


def _severity(record: Mapping[str, Any], status_id: int) -> int:
    sev = 1
    if status_id == 2:
        sev = 4
    elif record.get("type") == RecordType.RESOURCE_CHANGED and (record.get("resource") or {}).get("action") in ("delete", "replace"):
        sev = 3
    elif record.get("type") == RecordType.RESOURCE_CHANGED:
        sev = 2
    for f in record.get("findings") or ():
        if isinstance(f, Mapping):
            sev = max(sev, _FINDING_SEVERITY.get(str(f.get("severity")), 0))
    return sev


def _resources(record: Mapping[str, Any]) -> list[dict[str, Any]]:
    rtype = record.get("type")
    workspace = (record.get("run") or {}).get("workspace")
    if rtype == RecordType.RESOURCE_CHANGED:
        res = record.get("resource") or {}
        out: dict[str, Any] = {"uid": res.get("address"), "name": res.get("address"), "type": res.get("type"),
                               "data": {k: res.get(k) for k in ("actions", "changed_paths", "before", "after",
                                                                "provider", "previous_address") if res.get(k) is not None}}
        if res.get("module"):
            out["group"] = {"name": res["module"]}
        if workspace:
            out["labels"] = [f"workspace:{workspace}"]
        return [out]
    if rtype in (RecordType.RUN_STARTED, RecordType.PLAN_RECORDED):
        changes = (record.get("plan") or {}).get("changes") or []
        return [{"uid": c.get("address"), "name": c.get("address"), "data": {"actions": c.get("actions")}}
                for c in changes if isinstance(c, Mapping) and c.get("address")]
    return []


def _actor(record: Mapping[str, Any]) -> dict[str, Any]:
    actor = record.get("actor") or {}
    user: dict[str, Any] = {"name": actor.get("user") or "unknown"}
    git = actor.get("git") or {}
    if git.get("user_email"):
        user["email_addr"] = git["user_email"]
    if actor.get("os_user"):
        user["uid"] = actor["os_user"]
    out: dict[str, Any] = {"user": user, "app_name": "tfaudit"}
    ci = actor.get("ci") or {}
    if ci.get("provider"):
        out["app_uid"] = f"{ci['provider']}:{ci.get('run_id') or ''}".rstrip(":")
    return out


def to_ocsf(record: Mapping[str, Any]) -> Mapping[str, Any]:
    """The OCSF API Activity event for one ledger record."""
    activity_id, activity_name, operation = _activity(record)
    status_id, status, status_detail = _status(record)
    severity_id = _severity(record, status_id)
    run = record.get("run") or {}
    actor = record.get("actor") or {}
    chain = record.get("chain") or {}
    resources = _resources(record)
    host = actor.get("hostname")
    event: dict[str, Any] = {
        "class_uid": CLASS_UID,
        "class_name": "API Activity",
        "category_uid": CATEGORY_UID,
        "category_name": "Application Activity",
        "activity_id": activity_id,
        "activity_name": activity_name,
        "type_uid": CLASS_UID * 100 + activity_id,
        "type_name": f"API Activity: {activity_name}",
        "time": _epoch_ms(str(record.get("time"))),
        "severity_id": severity_id,
        "severity": _SEVERITY[severity_id],
        "status_id": status_id,
        "status": status,
        "message": _message(record, actor, operation, status),
        "metadata": {
            "version": OCSF_VERSION,
            "product": {"name": "tfaudit", "vendor_name": "tfaudit", "version": str(record.get("tfaudit_version") or __version__)},
            "uid": record.get("id"),
            "correlation_uid": run.get("id"),
            "sequence": chain.get("seq"),
            "original_time": record.get("time"),
            "log_name": "tfaudit ledger",
            "log_provider": "tfaudit",
        },
        "actor": _actor(record),
        "api": {
            "operation": operation,
            "service": {"name": str(run.get("tool") or "terraform")},
            "version": run.get("tool_version"),
            "request": {"uid": str(run.get("id") or record.get("id"))},
        },
        "src_endpoint": {"hostname": host} if host else {"name": "unknown"},
        "unmapped": {"tfaudit": {
            "type": record.get("type"), "workspace": run.get("workspace"), "working_dir": run.get("working_dir"),
            "run_id": run.get("id"), "plan_sha256": run.get("plan_sha256"), "seq": chain.get("seq"),
            "prev": chain.get("prev"), "key_id": _signer_key_id(record.get("signature")),
            "findings": record.get("findings") or [],
        }},
    }
    if status_detail:
        event["status_detail"] = status_detail
    if resources:
        event["resources"] = resources
    if event["api"]["version"] is None:
        del event["api"]["version"]
    cloud = actor.get("cloud") or {}
    if isinstance(cloud, Mapping) and cloud.get("account"):
        event["cloud"] = {"provider": str(cloud.get("provider") or "AWS"), "account": {"uid": str(cloud["account"])}}
    return event


def _message(record: Mapping[str, Any], actor: Mapping[str, Any], operation: str, status: str | None) -> str:
    who = actor.get("user") or "someone"
    if record.get("type") == RecordType.RESOURCE_CHANGED:
        res = record.get("resource") or {}
        return f"{who}: {res.get('action')} {res.get('address')} ({res.get('status')})"
    if record.get("type") == RecordType.RUN_FINISHED:
        return f"{who}: {operation} finished ({(record.get('outcome') or {}).get('status')})"
    if record.get("type") == RecordType.RUN_STARTED:
        summary = (record.get("plan") or {}).get("summary") or {}
        planned = ", ".join(f"{v} {k}" for k, v in sorted(summary.items()) if v) or "no changes"
        return f"{who}: {operation} started ({planned} planned)"
    return f"{who}: {operation} ({status or 'recorded'})"


def _signer_key_id(sig: Any) -> Any:
    """The key a record answers to: a version-3 record's certifying key (its own key signs one batch)."""
    if not isinstance(sig, Mapping):
        return None
    cert = sig.get("cert")
    return cert.get("key_id") if sig.get("v") == 3 and isinstance(cert, Mapping) else sig.get("key_id")
