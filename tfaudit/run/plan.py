"""plan, recorded: `terraform plan` as usual, then a `plan.recorded` record of what it plans.

With `-out=FILE` the record carries the file's sha256, so `tfaudit apply FILE` can link
to it (see tfaudit.run.gates, plan binding).
"""

from __future__ import annotations

import tempfile
from collections.abc import Mapping
from pathlib import Path

from tfaudit import records
from tfaudit.errors import ExitCode
from tfaudit.parse import planfile
from tfaudit.run import gates
from tfaudit.run.apply import load_plan
from tfaudit.run.recorded import recorded_run
from tfaudit.run.session import Invocation, open_session
from tfaudit.schema import RecordType
from tfaudit.terraform.args import plan_out
from tfaudit.terraform.binary import sha256_file
from tfaudit.ui.console import Console
from tfaudit.ui.saved_plan import SavedPlanNote


def run_plan(inv: Invocation, env: Mapping[str, str], console: Console | None = None) -> int:
    """`terraform plan` as usual, then a `plan.recorded` record of what it plans."""
    console = console or Console()
    session = open_session(inv, env, console)
    tf = session.tf
    args = list(inv.tf_args)
    out_arg = plan_out(args)
    with tempfile.TemporaryDirectory(prefix="tfaudit-") as tmp, recorded_run(session, "plan") as run:
        if out_arg:
            plan_path = out_arg
            plan_abs = Path(plan_path) if Path(plan_path).is_absolute() else tf.working_dir / plan_path
            rc = tf.run(["plan", *args], forwarder=run.fwd)
        else:
            plan_path = str(Path(tmp) / "tfaudit.tfplan")
            plan_abs = Path(plan_path)
            rc = tf.run(["plan", f"-out={plan_path}", *args], forwarder=run.fwd,
                        saved_plan_note=SavedPlanNote(tf.tool, replace_with_note=True))
        if run.interrupted:
            return int(ExitCode.INTERRUPTED)
        if rc not in (0, 2) or not plan_abs.is_file():
            return rc
        # a plan that changes nothing and hides nothing: read from the file, no `show -json` (tfaudit.parse.planfile)
        plan = (planfile.unchanged_plan(plan_abs) if tf.tool == "terraform" else None) or load_plan(tf, plan_path)
        plan_sha = sha256_file(plan_abs)
        records.learn_plan_secrets(plan, session.redactor)
        run.info(plan_sha256=plan_sha, plan_file=out_arg)
        analysis = gates.analyse_run(session, plan)
        rec = run.record(RecordType.PLAN_RECORDED, plan=records.plan_body(plan, plan_sha, session.redactor))
        if analysis.findings:
            rec["findings"] = analysis.findings
        override = run.publish([rec])
        console.summary(f"plan {plan_sha[:12]} (plan.recorded, run {run.run_id[:8]})", session.store.local_path or session.store.url)
    if analysis.blocked:  # the plan is recorded; exit 5 tells CI it must not be applied
        console.warn(f"tfaudit: blocked by policy: {session.redactor.scrub(analysis.reason)}")
        return override or int(ExitCode.POLICY)
    return override or rc
