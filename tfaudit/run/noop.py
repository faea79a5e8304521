"""Applying a plan with nothing to apply, without starting terraform again.

When nothing changes (the everyday CI run), `terraform apply PLANFILE` still costs a process
that loads the configuration, the state and the plan, walks every resource to do nothing,
and writes the state back unchanged: about a fifth of what `terraform apply` itself costs
there. tfaudit skips it, and shows what it would show (its `-json` events, or the screen
tfaudit renders from them), only when it is sure the apply would change nothing:

- tfaudit's own plan for `apply` (a user's plan file goes to terraform, which checks it is not
  stale), in the normal mode (not -refresh-only or -destroy), with no diagnostics in the
  planning step and no apply option but the harmless ones;
- terraform 1.11 (whose events for such an apply are pinned by a test against the real binary);
- a plan that is not applyable, complete, not errored, with no drift, no check results (an
  apply records those in the state) and every output unchanged;
- a local state file that is exactly the state inside the plan (so writing it back changes no
  byte) and holds no output value with a fraction (its spelling is terraform's own).

Otherwise terraform applies the plan as usual.

When the plan file itself shows such a plan and nothing sensitive in it (tfaudit.parse.planfile),
`terraform show -json` is not started either: the plan is read from the file.
"""

from __future__ import annotations

import json
import zipfile
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from tfaudit.parse import planfile
from tfaudit.parse.plan import Plan, plan_checks
from tfaudit.terraform.args import SplitArgs, flag_name
from tfaudit.terraform.binary import Terraform
from tfaudit.terraform.localstate import read_local_state

# apply options that change nothing when nothing is applied (-state, -state-out, -backup name other
# state files than the one compared below: terraform applies)
_HARMLESS = frozenset({"input", "no-color", "parallelism", "lock", "lock-timeout", "compact-warnings"})
_OTHER_MODES = frozenset({"refresh-only", "destroy"})
_VERSIONS = ("1.11.",)
_GO_ESCAPES = {"<": "\\u003c", ">": "\\u003e", "&": "\\u0026", "\u2028": "\\u2028", "\u2029": "\\u2029"}


class _Fraction(Exception):
    pass


def _no_fraction(text: str) -> Any:
    raise _Fraction(text)


def nothing_to_apply(plan: Plan) -> bool:
    """Whether the plan changes nothing, not even the state: no change, drift, check or output change."""
    return (plan.applyable is False and plan.complete is True and not plan.errored and not plan.changes
            and not plan.resource_drift and not plan_checks(plan)
            and all(o.actions == ("no-op",) for o in plan.output_changes))


def _may_skip(tf: Terraform, split: SplitArgs, diagnosed: bool) -> bool:
    """Whether this run could skip terraform's apply at all: the terraform, options and plan step."""
    if diagnosed or not (tf.tool == "terraform" and (tf.version or "").startswith(_VERSIONS)):
        return False
    if any(flag_name(a) not in _HARMLESS for a in split.apply if flag_name(a) is not None):
        return False
    # a refresh-only or destroy plan ends with other words
    return not any(flag_name(a) in _OTHER_MODES for a in split.plan)


def unchanged_plan(tf: Terraform, plan_file: Path, split: SplitArgs, *, diagnosed: bool) -> Plan | None:
    """tfaudit's own plan read from the plan file itself, without `terraform show -json`, when it
    surely changes nothing and marks nothing sensitive (tfaudit.parse.planfile); None: show it."""
    return planfile.unchanged_plan(plan_file) if _may_skip(tf, split, diagnosed) else None


def apply_events(tf: Terraform, plan: Plan, plan_file: Path, split: SplitArgs, *,
                 diagnosed: bool) -> list[bytes] | None:
    """The `-json` lines `terraform apply PLANFILE` would print for this plan, when it is sure that
    apply would change nothing (see the module's doc); None: let terraform apply it."""
    if not _may_skip(tf, split, diagnosed) or not nothing_to_apply(plan):
        return None
    try:
        with zipfile.ZipFile(plan_file) as z:
            planned_state = z.read("tfstate")
    except (OSError, KeyError, zipfile.BadZipFile):
        return None
    current = read_local_state(tf)
    if current is None or current != planned_state + b"\n":
        return None
    try:
        doc = json.loads(planned_state, parse_float=_no_fraction)
    except (ValueError, _Fraction):
        return None
    outputs = doc.get("outputs") if isinstance(doc, dict) else None
    if not isinstance(outputs, dict) or not all(isinstance(o, dict) and "type" in o for o in outputs.values()):
        return None
    shown = {name: {"sensitive": bool(o.get("sensitive")), "type": o["type"],
                    **({} if o.get("sensitive") else {"value": o.get("value")})}
             for name, o in sorted(outputs.items())}
    now = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return [
        _event("Apply complete! Resources: 0 added, 0 changed, 0 destroyed.", now, "changes",
               {"add": 0, "change": 0, "import": 0, "remove": 0, "operation": "apply"}, "change_summary"),
        _event(f"Outputs: {len(shown)}", now, "outputs", shown, "outputs"),
    ]


def _event(message: str, when: str, key: str, value: Any, kind: str) -> bytes:
    """One line as terraform's JSON view writes it: members in its order, Go's HTML-safe escaping."""
    obj = {"@level": "info", "@message": message, "@module": "terraform.ui", "@timestamp": when, key: value,
           "type": kind}
    text = json.dumps(obj, ensure_ascii=False, separators=(",", ":"))
    for char, escape in _GO_ESCAPES.items():
        text = text.replace(char, escape)
    return text.encode("utf-8") + b"\n"
