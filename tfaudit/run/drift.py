"""`tfaudit drift`: a refresh-only plan, one `drift.detected` record per resource changed outside terraform.

Exits like `terraform plan -detailed-exitcode`: 0 no drift, 2 drift found, terraform's
own code when it fails. The records name the attribute paths that differ; values are
redacted exactly as in resource.changed records. A refresh-only plan writes no state,
so running this on a schedule changes nothing.
"""

from __future__ import annotations

import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from tfaudit import records
from tfaudit.errors import ExitCode, UsageError
from tfaudit.parse.plan import Plan, ResourceChange, parse_plan
from tfaudit.run.recorded import recorded_run
from tfaudit.run.session import Invocation, Session, open_session
from tfaudit.schema import RecordType
from tfaudit.terraform.args import drift_conflict
from tfaudit.terraform.binary import sha256_file
from tfaudit.ui.console import Console


def drift_detail(d: ResourceChange, redactor: Any, plan_sha: str) -> dict[str, Any]:
    body = records.resource_body(d, records.Outcome("planned"), redactor)
    return {
        "address": body["address"],
        "module": body["module"],
        "mode": body["mode"],
        "type": body["type"],
        "name": body["name"],
        "index": body["index"],
        "provider": body["provider"],
        "actions": body["actions"],
        "action": body["action"],
        "changed_paths": body["changed_paths"],
        "changed_paths_truncated": body["changed_paths_truncated"],
        "before": body["before"],  # what the state says (terraform's last known value)
        "after": body["after"],  # what the provider reads now
        "plan_sha256": plan_sha,
    }


def drifted(plan: Plan) -> list[ResourceChange]:
    return [d for d in plan.resource_drift if d.actions not in (("no-op",), ("read",))]


def run_drift(inv: Invocation, env: Mapping[str, str], console: Console | None = None) -> int:
    conflict = drift_conflict(inv.tf_args)
    if conflict is not None:
        raise UsageError(f"tfaudit drift sets {conflict} itself", hint="drop it from the arguments")
    console = console or Console()
    session = open_session(inv, env, console)
    tf = session.tf
    with tempfile.TemporaryDirectory(prefix="tfaudit-drift-") as tmp, recorded_run(session, "drift") as run:
        plan_path = str(Path(tmp) / "drift.tfplan")
        rc = tf.run(["plan", "-refresh-only", "-detailed-exitcode", f"-out={plan_path}", *inv.tf_args],
                    forwarder=run.fwd)
        if run.interrupted:
            return int(ExitCode.INTERRUPTED)
        if rc not in (0, 2) or not Path(plan_path).is_file():
            return rc or int(ExitCode.FAILURE)
        plan = parse_plan(tf.show_json(plan_path), source="terraform show -json (refresh-only plan)")
        plan_sha = sha256_file(plan_path)
        records.learn_plan_secrets(plan, session.redactor)
        run.info(plan_sha256=plan_sha)
        found = drifted(plan)
        recs = [run.record(RecordType.DRIFT_DETECTED, detail=drift_detail(d, session.redactor, plan_sha)) for d in found]
        override = run.publish(recs) if recs else 0
        _summarise(session, found, run.elapsed())
    if override:
        return override
    return int(ExitCode.CHANGES) if found or rc == 2 else 0


def _summarise(session: Session, found: list[ResourceChange], seconds: float) -> None:
    if not found:
        session.console.warn(f"tfaudit: no drift ({seconds:.1f}s)")
        return
    session.console.warn(f"tfaudit: drift in {len(found)} resource{'s' if len(found) != 1 else ''} "
                         "(recorded as drift.detected):")
    for d in found:
        paths = records.changed_paths(d.before, d.after, d.after_unknown)
        shown = ", ".join(paths[:5]) + (f" and {len(paths) - 5} more" if len(paths) > 5 else "")
        what = "deleted outside terraform" if d.actions == ("delete",) else (shown or "changed")
        session.console.warn(f"  {d.address}: {what}")
