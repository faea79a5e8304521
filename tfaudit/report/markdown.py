"""The Markdown summary of one CI step's records (GitHub's step summary, a GitLab artifact)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from tfaudit.query import RunSummary

_ICON = {"succeeded": "✅", "planned": "📝", "partial": "⚠️", "failed": "❌", "blocked": "⛔",
         "interrupted": "⏹️", "cancelled": "⏹️", "unfinished": "❓"}
MAX_RESOURCE_ROWS = 200


def _cell(value: Any) -> str:
    text = "" if value is None else str(value)
    return text.replace("\\", "\\\\").replace("|", "\\|").replace("\n", " ").replace("<", "&lt;")[:300]


def _counts(counts: Mapping[str, Any]) -> str:
    return ", ".join(f"{v} {k}" for k, v in sorted(counts.items()) if v) or "no changes"


def run_markdown(run: RunSummary, ledger: str, seqs: tuple[int, int] | None) -> str:
    icon = _ICON.get(run.status, "")
    lines = [f"### tfaudit {_cell(run.command)}: {icon} {_cell(run.status)}", "", "| | |", "|---|---|",
             f"| run | `{run.run_id}` |", f"| workspace | {_cell(run.workspace)} |"]
    ci = run.ci
    who = _cell(run.actor)
    if ci:
        who += f" via {_cell(ci.get('provider'))}" + (f" ({_cell(ci.get('repository'))} {_cell(ci.get('ref'))})"
                                                     if ci.get("repository") else "")
        oidc = ci.get("oidc") if isinstance(ci.get("oidc"), Mapping) else None
        if oidc:
            who += "; OIDC " + ("verified" if oidc.get("verified") else f"not verified ({_cell(oidc.get('reason'))})")
    lines.append(f"| actor | {who} |")
    plan = f"{_counts(run.planned)}"
    if run.plan_sha256:
        plan += f"; sha256 `{run.plan_sha256[:16]}…`"
    if run.recorded_by:
        plan += f"; recorded by plan run `{_cell(str(run.recorded_by.get('run_id'))[:8])}` (seq {run.recorded_by.get('seq')})"
    lines.append(f"| plan | {plan} |")
    if run.command != "plan":
        lines.append(f"| result | {_counts(run.counts)}" + (f" (exit {run.exit_code})" if run.exit_code is not None else "") + " |")
    if run.reason:
        lines.append(f"| reason | {_cell(run.reason)} |")
    where = f"{len(run.records)} records" + (f" (seq {seqs[0]}..{seqs[1]})" if seqs else "") + f" in `{_cell(ledger)}`"
    lines += [f"| audit trail | {where} |", ""]
    if run.findings:
        lines += [f"**Findings ({len(run.findings)})**", ""]
        lines += [f"- **{_cell(f.get('severity'))}** `{_cell(f.get('rule'))}`"
                  + (f" `{_cell(f.get('address'))}`" if f.get("address") else "") + f": {_cell(f.get('message'))}"
                  for f in run.findings]
        lines.append("")
    if run.resources:
        lines += [f"<details><summary>Resources ({len(run.resources)})</summary>", "",
                  "| resource | action | status | changed |", "|---|---|---|---|"]
        for r in run.resources[:MAX_RESOURCE_ROWS]:
            paths = list(r.get("changed_paths") or [])
            changed = ", ".join(paths[:5]) + (f" (+{len(paths) - 5})" if len(paths) > 5 else "")
            err = r.get("error") if isinstance(r.get("error"), Mapping) else None
            status = _cell(r.get("status")) + (f": {_cell(err.get('summary'))}" if err else "")
            lines.append(f"| `{_cell(r.get('address'))}` | {_cell(r.get('action'))} | {status} | {_cell(changed)} |")
        if len(run.resources) > MAX_RESOURCE_ROWS:
            lines.append(f"| … {len(run.resources) - MAX_RESOURCE_ROWS} more | | | |")
        lines += ["", "</details>", ""]
    elif run.command == "plan" and run.records:
        changes = (run.records[-1].get("plan") or {}).get("changes") or []
        if changes:
            lines += [f"<details><summary>Planned changes ({len(changes)})</summary>", "", "| resource | actions |", "|---|---|"]
            lines += [f"| `{_cell(c.get('address'))}` | {_cell('-'.join(c.get('actions') or []))} |" for c in changes[:MAX_RESOURCE_ROWS]]
            lines += ["", "</details>", ""]
    return "\n".join(lines) + "\n"


def step_markdown(runs: Sequence[RunSummary], ledger: str, command: Sequence[str], exit_code: int,
                  seqs: tuple[int, int] | None) -> str:
    if not runs:
        return (f"### tfaudit {_cell(' '.join(command[:1]))}: recorded nothing\n\n"
                f"`tfaudit {_cell(' '.join(command))}` exited {exit_code} without writing audit records "
                f"to `{_cell(ledger)}`; see the step's log.\n")
    return "\n".join(run_markdown(r, ledger, seqs) for r in runs)
