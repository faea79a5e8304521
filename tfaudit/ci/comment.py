"""One pull or merge request comment per root module and workspace, updated in place.

The body is built from the records of one run (a plan, or an apply with its plan): the
counts, destroy and replace warnings first, a collapsible list of the changes, the findings
table, and after an apply the outcome of every resource. A hidden marker carries the root
module and workspace, so the next push finds the comment and edits it instead of adding
another. Labels follow tfcmt's: `destroy`, `add-or-update` or `no-changes`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import PurePath
from typing import Any

from tfaudit.ci.forge import Forge
from tfaudit.query import RunSummary
from tfaudit.schema import RecordType

MARKER_PREFIX = "<!-- tfaudit:comment "
LABELS = ("destroy", "add-or-update", "no-changes")
MAX_ROWS = 100
MAX_BODY = 60000  # GitHub refuses comments over 65,536 characters; GitLab's limit is higher
_ORDER = ("delete", "replace", "create", "update", "import", "move", "forget")
_SYMBOL = {"create": "+", "update": "~", "replace": "-/+", "delete": "-", "forget": ".", "import": "<=", "move": "->"}
_ICON = {"succeeded": "✅", "planned": "📝", "partial": "⚠️", "failed": "❌", "blocked": "⛔",
         "interrupted": "⏹️", "cancelled": "⏹️", "unfinished": "❓"}


@dataclass(frozen=True)
class Posted:
    """What `post` did: where, which comment, created or updated, the labels set."""

    where: str
    comment_id: int
    created: bool
    key: str
    labels: tuple[str, ...]


def module_key(working_dir: str, root: str | None) -> str:
    """The root module as a path relative to the repository (`.` for its top)."""
    wd = PurePath(working_dir)
    if root:
        try:
            rel = wd.relative_to(PurePath(root))
            return rel.as_posix() or "."
        except ValueError:
            pass
    return wd.name or "."


def marker(module: str, workspace: str) -> str:
    safe = re.sub(r"[^A-Za-z0-9._/@:-]", "_", f"{module}@{workspace}")
    return f'{MARKER_PREFIX}key="{safe}" -->'


def _cell(value: Any) -> str:
    text = "" if value is None else str(value)
    return text.replace("\\", "\\\\").replace("|", "\\|").replace("\n", " ").replace("<", "&lt;")[:300]


def _code(value: Any) -> str:
    return "`" + str(value).replace("`", "'").replace("|", "\\|") + "`"


def _changes(run: RunSummary) -> list[Mapping[str, Any]]:
    """The planned changes: a plan's list, or the apply's own run.started list."""
    for rec in run.records:
        if rec.get("type") in (RecordType.PLAN_RECORDED, RecordType.RUN_STARTED):
            plan = rec.get("plan")
            if isinstance(plan, Mapping) and isinstance(plan.get("changes"), list):
                return [c for c in plan["changes"] if isinstance(c, Mapping)]
    return [{"address": r.get("address"), "actions": r.get("actions") or [r.get("action")]} for r in run.resources]


def _word(change: Mapping[str, Any]) -> str:
    acts = [str(a) for a in change.get("actions") or []]
    if sorted(acts) == ["create", "delete"]:
        return "replace"
    if acts == ["no-op"] and change.get("previous_address"):
        return "move"
    return acts[0] if len(acts) == 1 else "-".join(acts) or "?"


def labels_for(planned: Mapping[str, int]) -> tuple[str, ...]:
    """tfcmt's labels: destroy when anything is deleted or replaced, else add-or-update, else no-changes."""
    if planned.get("delete") or planned.get("replace"):
        return ("destroy",)
    if any(n for a, n in planned.items() if a != "no-op"):
        return ("add-or-update",)
    return ("no-changes",)


def _plan_lines(run: RunSummary, changes: Sequence[Mapping[str, Any]]) -> list[str]:
    by_word: dict[str, list[Mapping[str, Any]]] = {}
    for ch in changes:
        by_word.setdefault(_word(ch), []).append(ch)
    order = [w for w in _ORDER if w in by_word] + sorted(w for w in by_word if w not in _ORDER)
    counts = run.planned or {w: len(v) for w, v in by_word.items()}
    lines = []
    dangerous = [w for w in ("delete", "replace") if by_word.get(w)]
    for w in dangerous:
        addrs = [str(c.get("address")) for c in by_word[w]]
        shown = ", ".join(_code(a) for a in addrs[:10]) + (f" and {len(addrs) - 10} more" if len(addrs) > 10 else "")
        verb = "destroys" if w == "delete" else "replaces (destroys, then creates)"
        lines += [f"> ⚠️ **This plan {verb} {len(addrs)} resource{'' if len(addrs) == 1 else 's'}:** {shown}", ""]
    summary = ", ".join(f"{counts[w]} to {w}" for w in order if counts.get(w)) or "no changes"
    plan = f"**Plan:** {summary}"
    if run.plan_sha256:
        plan += f" · plan sha256 `{run.plan_sha256[:12]}…`"
    lines += [plan, ""]
    if changes:
        lines += [f"<details><summary>Changes ({len(changes)})</summary>", "", "```diff"]
        rows = [ch for w in order for ch in by_word[w]]
        for ch in rows[:MAX_ROWS * 5]:
            w = _word(ch)
            sign = "-" if w in ("delete", "replace") else "+" if w == "create" else "!"
            lines.append(f"{sign} {_SYMBOL.get(w, '?'):>3} {str(ch.get('address')).replace(chr(10), ' ')}  ({w})")
        if len(rows) > MAX_ROWS * 5:
            lines.append(f"  ... and {len(rows) - MAX_ROWS * 5} more")
        lines += ["```", "", "</details>", ""]
    return lines


def _findings_lines(findings: Sequence[Mapping[str, Any]]) -> list[str]:
    if not findings:
        return ["**Findings:** none", ""]
    lines = [f"**Findings ({len(findings)})**", "", "| Severity | Rule | Address | Finding |", "|---|---|---|---|"]
    rank = {"critical": 0, "high": 1, "medium": 2, "low": 3, "info": 4}
    ordered = sorted(findings, key=lambda f: (rank.get(str(f.get("severity")), 5), str(f.get("address") or "")))
    for f in ordered[:MAX_ROWS]:
        sev = str(f.get("severity", "?"))
        sev = f"**{sev}**" if sev in ("critical", "high") else sev
        addr = _code(f.get("address")) if f.get("address") else "-"
        lines.append(f"| {sev} | {_code(f.get('rule', '?'))} | {addr} | {_cell(f.get('message'))} |")
    if len(findings) > MAX_ROWS:
        lines.append(f"| … | {len(findings) - MAX_ROWS} more | | |")
    return lines + [""]


def _outcome_lines(run: RunSummary) -> list[str]:
    counts = ", ".join(f"{n} {k}" for k, n in sorted(run.counts.items()) if n) or "nothing applied"
    exit_code = f", exit {run.exit_code}" if run.exit_code is not None else ""
    lines = [f"**{run.command.capitalize()}: {_ICON.get(run.status, '')} {run.status}** ({counts}{exit_code})"]
    if run.reason:
        lines.append(f"> {_cell(run.reason)}")
    lines.append("")
    if run.resources:
        lines += ["| Resource | Action | Outcome |", "|---|---|---|"]
        for r in run.resources[:MAX_ROWS * 2]:
            err = r.get("error") if isinstance(r.get("error"), Mapping) else None
            status = str(r.get("status", "?"))
            status = ("❌ " if status == "failed" else "✅ " if status == "succeeded" else "") + _cell(status)
            if err:
                status += f": {_cell(err.get('summary'))}"
            lines.append(f"| {_code(r.get('address'))} | {_cell(r.get('action'))} | {status} |")
        if len(run.resources) > MAX_ROWS * 2:
            lines.append(f"| … {len(run.resources) - MAX_ROWS * 2} more | | |")
        lines.append("")
    return lines


def render(run: RunSummary, module: str, plan_run: RunSummary | None = None) -> str:
    """The comment for one run; for an apply, `plan_run` is the plan it applied, when known."""
    workspace = run.workspace
    is_apply = run.command != "plan"
    source = plan_run if (is_apply and plan_run is not None) else run
    lines = [marker(module, workspace),
             f"## tfaudit {run.command}: {_code(module)} · workspace {_code(workspace)} {_ICON.get(run.status, '')}", ""]
    lines += _plan_lines(run, _changes(run))
    findings = list(run.findings) + [f for f in (source.findings if source is not run else [])
                                     if f not in run.findings]
    lines += _findings_lines(findings)
    if is_apply:
        lines += _outcome_lines(run)
    who = _cell(run.actor)
    ci = run.ci
    if ci and ci.get("url"):
        who += f" · [CI job]({_cell(ci.get('url'))})"
    seqs = [r["chain"]["seq"] for r in run.records if isinstance(r.get("chain"), Mapping) and "seq" in r["chain"]]
    where = f"records {min(seqs)}..{max(seqs)}" if seqs else f"{len(run.records)} records"
    lines.append(f"<sub>Recorded by tfaudit: run `{run.run_id[:8]}` by {who}, {where} of the signed audit trail.</sub>")
    body = "\n".join(lines) + "\n"
    if len(body) > MAX_BODY:
        body = body[:MAX_BODY] + "\n\n_(comment truncated: see the job's summary for the rest)_\n"
    return body


def post(forge: Forge, body: str, module: str, workspace: str, planned: Mapping[str, int],
         label_prefix: str = "") -> Posted:
    """Create the comment, or update the one that carries this module's marker; then set the labels."""
    mark = marker(module, workspace)
    existing = [c for c in forge.comments() if c.body.startswith(mark)]
    created = False
    comment_id = existing[0].id if existing else 0
    if existing:
        from tfaudit.errors import ForgeError

        try:
            forge.update(comment_id, body)
        except ForgeError as e:
            if e.status not in (403, 404):
                raise
            existing = []  # someone else's comment with our marker: leave it, write our own
    if not existing:
        comment_id = forge.create(body).id
        created = True
    wanted = tuple(label_prefix + lb for lb in labels_for(planned))
    forge.set_labels(wanted, [label_prefix + lb for lb in LABELS if label_prefix + lb not in wanted])
    return Posted(forge.where, comment_id, created, mark, wanted)


def plan_of(run: RunSummary, runs: Sequence[RunSummary]) -> RunSummary | None:
    """The plan run an apply applied (through its plan.recorded_by link), when it is in `runs`."""
    link = run.recorded_by
    if not link:
        return None
    return next((r for r in runs if r.run_id == link.get("run_id")), None)


COMMENTED = ("plan", "apply", "destroy")


def pick(runs: Sequence[RunSummary], run_id: str | None, working_dir: str | None) -> RunSummary | None:
    """The run to comment on: by id (a prefix will do), else the newest plan/apply in working_dir."""
    for run in runs:  # newest first
        if run_id:
            if run.run_id.startswith(run_id):
                return run
        elif run.command in COMMENTED and (working_dir is None or run.working_dir == working_dir):
            return run
    return None


def publish(run: RunSummary, runs: Sequence[RunSummary], forge: Forge, root: str | None,
            label_prefix: str = "") -> Posted:
    """Render the run's comment (with the plan it applied, when found in `runs`) and post it."""
    module = module_key(run.working_dir, root)
    body = render(run, module, plan_of(run, runs))
    return post(forge, body, module, run.workspace, run.planned, label_prefix)
