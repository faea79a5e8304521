"""Build real, signed ledgers of synthetic runs quickly (no terraform), for reading-side tests."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tfaudit import records
from tfaudit.trail.ledger import Ledger
from tfaudit.trail.signing import Signer, canonical
from tfaudit.trail.store import LedgerStore


@dataclass
class Res:
    address: str
    action: str = "update"
    status: str = "succeeded"
    previous_address: str | None = None
    error: str | None = None
    type: str | None = None  # default: from the address
    findings: list[dict[str, Any]] = field(default_factory=list)


_ACTIONS = {"create": ["create"], "update": ["update"], "delete": ["delete"], "replace": ["delete", "create"],
            "move": ["no-op"]}


def resource(r: Res) -> dict[str, Any]:
    body: dict[str, Any] = {
        "address": r.address, "previous_address": r.previous_address, "module": None, "mode": "managed",
        "type": r.type or r.address.split(".")[0], "name": r.address.rsplit(".", 1)[-1].split("[")[0], "index": None, "deposed": None,
        "provider": "registry.terraform.io/hashicorp/terraform", "actions": _ACTIONS.get(r.action, ["update"]),
        "action": r.action, "action_reason": None, "importing": None, "status": r.status,
        "error": {"summary": r.error, "detail": "detail of " + r.error} if r.error else None,
        "elapsed_seconds": 0.1, "changed_paths": ["input.gen"], "changed_paths_truncated": False,
        "before": {"input": {"gen": 1}}, "after": {"input": {"gen": 2}},
    }
    if r.findings:
        body["findings"] = r.findings
    return body


def add_run(ledger: Path | LedgerStore, signer: Signer, *, time: str, actor: str = "alice", workspace: str = "default",
            command: str = "apply", status: str = "succeeded", resources: Sequence[Res] = (),
            ci: Mapping[str, Any] | None = None, findings: Sequence[Mapping[str, Any]] = ()) -> str:
    """Append one run (plan.recorded for command=plan) with fixed times; returns its run id."""
    run = records.RunInfo(id=records.RunId(records.new_id()), command=command, args=(), tool="terraform",
                          tool_version="1.11.4", workspace=workspace, working_dir="/work/" + workspace,
                          plan_sha256="a" * 64, started_at=time)
    actor_block = {"user": actor, "os_user": actor, "hostname": "host", "git": None, "ci": dict(ci) if ci else None}
    plan = {"sha256": "a" * 64, "summary": {}, "changes": [{"address": r.address, "actions": _ACTIONS.get(r.action, ["update"])}
                                                           for r in resources]}
    for r in resources:
        plan["summary"][r.action] = plan["summary"].get(r.action, 0) + 1

    def rec(rtype: str, **body: Any) -> dict[str, Any]:
        out = records.base_record(rtype, run, actor_block, **body)
        out["time"] = time
        return out

    if command == "plan":
        recs = [rec("plan.recorded", plan=plan, **({"findings": list(findings)} if findings else {}))]
    else:
        recs = [rec("run.started", plan=plan, **({"findings": list(findings)} if findings else {}))]
        recs += [rec("resource.changed", resource=resource(r)) for r in resources]
        counts = {"succeeded": 0, "failed": 0, "not_attempted": 0}
        for r in resources:
            counts[r.status] = counts.get(r.status, 0) + 1
        recs.append(rec("run.finished", outcome=records.outcome_body(
            status=status, exit_code=0 if status == "succeeded" else 1, counts=counts,
            state_before=None, state_after=None)))
    (Ledger(ledger) if isinstance(ledger, Path) else ledger).append(recs, signer)
    return str(run.id)


def ledger_lines(path: Path) -> list[bytes]:
    """A file ledger's lines, each with its newline."""
    return path.read_bytes().splitlines(keepends=True)


def edit_line(path: Path, n: int, edit: Callable[[dict[str, Any]], None]) -> None:
    """Edit the record on line n (1-based; -1 is the last) in place, written back canonical, as a
    tamperer would, with its signature as it was."""
    lines = ledger_lines(path)
    i = n - 1 if n > 0 else n
    rec = json.loads(lines[i])
    edit(rec)
    lines[i] = canonical(rec) + b"\n"
    path.write_bytes(b"".join(lines))
