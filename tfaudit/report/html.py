"""One self-contained HTML file: inline CSS and SVG, no scripts, no fetches of any kind.

Every value from a record is escaped: records carry user-controlled text (workspace names,
commit authors, terraform error messages) and must never become markup.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, timedelta, timezone
from html import escape
from typing import Any

from tfaudit import __version__
from tfaudit.query import RunSummary, parse_time
from tfaudit.report.model import ReportModel, Tally
from tfaudit.report.verification import LedgerStatus

# Outcome colours: saturated and far apart, so they are told apart on screen and by tests.
OUTCOME_COLOURS: dict[str, str] = {
    "succeeded": "#2e9d3a",
    "partial": "#f2a900",
    "failed": "#d32f2f",
    "interrupted": "#8e24aa",
    "blocked": "#ef6c00",
    "cancelled": "#8d8d8d",
    "planned": "#1e6fd9",
    "unfinished": "#37474f",
}
_OTHER = "#5d4037"

CSS = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0;background:#f6f7f9;color:#1b1f24}
header{background:#1b2735;color:#fff;padding:18px 28px}
header h1{margin:0;font-size:22px} header p{margin:4px 0 0;color:#c9d3de}
main{padding:18px 28px;max-width:1400px}
section{background:#fff;border:1px solid #dde2e8;border-radius:6px;padding:14px 18px;margin:0 0 18px}
h2{font-size:17px;margin:0 0 10px}
table{border-collapse:collapse;width:100%;font-size:13px}
th,td{text-align:left;padding:5px 8px;border-bottom:1px solid #eceff3;vertical-align:top}
th{background:#f0f3f6;font-weight:600}
td.num,th.num{text-align:right;font-variant-numeric:tabular-nums}
code{font:12px ui-monospace,SFMono-Regular,Menlo,monospace;background:#f0f3f6;padding:1px 4px;border-radius:3px;word-break:break-all}
.ok{color:#1b7a2b;font-weight:600} .bad{color:#c62828;font-weight:600} .warn{color:#a15c00;font-weight:600}
.pill{display:inline-block;padding:1px 8px;border-radius:10px;color:#fff;font-size:12px}
.bar{display:inline-block;height:10px;background:#1e6fd9;border-radius:2px;vertical-align:middle}
.grid{display:grid;grid-template-columns:minmax(0,1fr) minmax(0,1fr);gap:18px}
.muted{color:#66707a}
svg text{font:11px system-ui,sans-serif;fill:#39424c}
"""


def _pill(status: str) -> str:
    colour = OUTCOME_COLOURS.get(status, _OTHER)
    return f'<span class="pill" style="background:{colour}">{escape(status)}</span>'


def _t(text: str | None) -> str:
    return escape((text or "")[:19].replace("T", " ") + ("Z" if text else ""))


def _counts(counts: Mapping[str, Any]) -> str:
    return escape(", ".join(f"{v} {k}" for k, v in sorted(counts.items())) or "no changes")


def timeline_svg(runs: Sequence[RunSummary], width: int = 1100) -> str:
    """Runs on a time axis, one lane per workspace, each a dot coloured by its outcome."""
    points: list[tuple[datetime, RunSummary]] = []
    for r in runs:
        t = parse_time(r.time)
        if t is not None:
            points.append((t, r))
    lanes = sorted({r.workspace for _, r in points}) or ["(none)"]
    if len(lanes) > 12:  # keep the chart readable: the busiest lanes, the rest together
        busiest = [w for w, _ in sorted(((w, sum(r.workspace == w for _, r in points)) for w in lanes),
                                        key=lambda x: -x[1])[:11]]
        lanes = sorted(busiest) + ["(other)"]
    lane_of = {w: i for i, w in enumerate(lanes)}
    left, right, top, lane_h = 150, 20, 16, 34
    height = top + lane_h * len(lanes) + 40
    plot_w = width - left - right
    if points:
        t0 = min(t for t, _ in points)
        t1 = max(t for t, _ in points)
    else:
        t0 = t1 = datetime.now(timezone.utc)
    pad = max((t1 - t0) * 0.04, timedelta(seconds=1))  # keep the first and last dots off the edges
    t0, t1 = t0 - pad, t1 + pad
    span = (t1 - t0).total_seconds()

    def x(t: datetime) -> float:
        return left + plot_w * ((t - t0).total_seconds() / span)

    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" id="timeline" role="img" aria-label="Runs over time, '
             f'coloured by outcome" width="100%" viewBox="0 0 {width} {height}" preserveAspectRatio="xMinYMin meet">',
             f'<rect x="0" y="0" width="{width}" height="{height}" fill="#ffffff"/>']
    for i, lane in enumerate(lanes):
        y = top + lane_h * i + lane_h / 2
        parts.append(f'<line x1="{left}" y1="{y:.1f}" x2="{width - right}" y2="{y:.1f}" stroke="#e3e7ec"/>')
        parts.append(f'<text x="{left - 8}" y="{y + 4:.1f}" text-anchor="end">{escape(lane[:22])}</text>')
    axis_y = top + lane_h * len(lanes) + 6
    parts.append(f'<line x1="{left}" y1="{axis_y}" x2="{width - right}" y2="{axis_y}" stroke="#9aa4ae"/>')
    for k in range(6):
        tk = t0 + timedelta(seconds=span * k / 5)
        xx = x(tk)
        label = tk.strftime("%Y-%m-%d") if span > 4 * 86400 else tk.strftime("%m-%d %H:%M") if span > 3600 else tk.strftime("%H:%M:%S")
        anchor = "start" if k == 0 else "end" if k == 5 else "middle"
        parts.append(f'<line x1="{xx:.1f}" y1="{axis_y}" x2="{xx:.1f}" y2="{axis_y + 5}" stroke="#9aa4ae"/>')
        parts.append(f'<text x="{xx:.1f}" y="{axis_y + 18}" text-anchor="{anchor}">{escape(label)}</text>')
    for t, r in sorted(points, key=lambda p: p[0]):
        row = lane_of.get(r.workspace, lane_of.get("(other)", 0))
        y = top + lane_h * row + lane_h / 2
        colour = OUTCOME_COLOURS.get(r.status, _OTHER)
        radius = 6 if r.command != "plan" else 5
        tip = (f"{r.time} {r.command} by {r.actor} in {r.workspace}: {r.status} "
               f"({', '.join(f'{v} {k}' for k, v in sorted((r.counts or r.planned).items())) or 'no changes'})")
        parts.append(f'<circle class="run {escape(r.status)}" cx="{x(t):.1f}" cy="{y:.1f}" r="{radius}" '
                     f'fill="{colour}" stroke="#ffffff" stroke-width="1"><title>{escape(tip)}</title></circle>')
    parts.append("</svg>")
    return "".join(parts)


def _legend(model: ReportModel) -> str:
    items = []
    for status, colour in OUTCOME_COLOURS.items():
        n = model.outcomes.get(status, 0)
        if n:
            items.append(f'<span style="margin-right:14px"><span class="pill" style="background:{colour}">'
                         f'{escape(status)}</span> {n}</span>')
    return f'<p id="legend">{"".join(items) or "no runs"}</p>'


def _tally_table(rows: Iterable[Tally], label: str, table_id: str) -> str:
    rows = list(rows)
    top = max((t.changes for t in rows), default=0) or 1
    body = "".join(
        f"<tr><td>{escape(t.name)}</td><td class=num>{t.runs}</td><td class=num>{t.changes}</td>"
        f"<td class=num>{t.succeeded}</td><td class=num>{t.failed}</td><td class=num>{t.other}</td>"
        f'<td style="width:25%"><span class="bar" style="width:{int(100 * t.changes / top)}%"></span></td></tr>'
        for t in rows)
    return (f'<table id="{table_id}"><thead><tr><th>{escape(label)}</th><th class=num>runs</th>'
            f"<th class=num>changes</th><th class=num>succeeded</th><th class=num>failed</th><th class=num>other</th>"
            f"<th></th></tr></thead><tbody>{body or '<tr><td colspan=7 class=muted>none</td></tr>'}</tbody></table>")


def _verification(statuses: Sequence[LedgerStatus]) -> str:
    rows = []
    for s in statuses:
        cls = {"verified": "ok", "failed": "bad"}.get(s.state, "warn")
        problems = "".join(f"<li>{escape(p)}</li>" for p in s.problems[:20])
        more = f"<li>... {len(s.problems) - 20} more</li>" if len(s.problems) > 20 else ""
        rows.append(f'<tr><td><code>{escape(s.source)}</code></td><td class="{cls}">{escape(s.state)}</td>'
                    f"<td>{escape(s.summary)}{f'<ul>{problems}{more}</ul>' if problems else ''}</td></tr>")
    return ('<table id="verification"><thead><tr><th>ledger</th><th>status</th><th>detail</th></tr></thead>'
            f"<tbody>{''.join(rows) or '<tr><td colspan=3 class=muted>no ledgers</td></tr>'}</tbody></table>")


def _riskiest(model: ReportModel) -> str:
    rows = "".join(
        f"<tr><td class=num>{s.score}</td><td><code>{escape(str(s.resource.get('address')))}</code></td>"
        f"<td>{escape(str(s.resource.get('action')))}</td><td>{_pill(str(s.resource.get('status')))}</td>"
        f"<td>{escape(', '.join(s.reasons))}</td><td>{_t(s.run.time)}</td><td>{escape(s.run.actor)}</td>"
        f"<td>{escape(s.run.workspace)}</td></tr>"
        for s in model.riskiest)
    return ('<table id="riskiest"><thead><tr><th class=num>score</th><th>resource</th><th>action</th><th>status</th>'
            "<th>why</th><th>when</th><th>who</th><th>workspace</th></tr></thead>"
            f"<tbody>{rows or '<tr><td colspan=8 class=muted>no changes recorded</td></tr>'}</tbody></table>")


def _failed(model: ReportModel) -> str:
    rows = []
    for run, res in model.failed[:200]:
        raw_err = res.get("error")
        err: Mapping[str, Any] = raw_err if isinstance(raw_err, Mapping) else {}
        detail = str(err.get("detail") or "").strip().splitlines()
        rows.append(f"<tr><td>{_t(run.time)}</td><td><code>{escape(str(res.get('address')))}</code></td>"
                    f"<td>{escape(str(res.get('action')))}</td><td>{_pill(str(res.get('status')))}</td>"
                    f"<td>{escape(str(err.get('summary') or ''))}"
                    f"{'<br><span class=muted>' + escape(detail[0][:300]) + '</span>' if detail else ''}</td>"
                    f"<td>{escape(run.actor)}</td><td>{escape(run.workspace)}</td><td><code>{escape(run.run_id[:8])}</code></td></tr>")
    return ('<table id="failed"><thead><tr><th>when</th><th>resource</th><th>action</th><th>status</th><th>error</th>'
            "<th>who</th><th>workspace</th><th>run</th></tr></thead>"
            f"<tbody>{''.join(rows) or '<tr><td colspan=8 class=muted>no failed resources</td></tr>'}</tbody></table>")


def _codes(addresses: Sequence[str], limit: int = 30) -> str:
    shown = ", ".join(f"<code>{escape(a)}</code>" for a in addresses[:limit])
    return shown + (f" and {len(addresses) - limit} more" if len(addresses) > limit else "")


def _out_of_band(model: ReportModel) -> str:
    rows = []
    for e in model.out_of_band[:200]:
        names = [f"{label}: {_codes(addrs)}" for label, addrs in
                 (("changed", e.changed), ("deleted", e.removed), ("created", e.added)) if addrs]
        what = "<br>".join(names) or '<span class="muted">which resources: not known (recorded by an older tfaudit)</span>'
        rows.append(f"<tr><td>{_t(e.since)} &ndash; {_t(e.time)}</td><td>{escape(e.workspace)}</td>"
                    f"<td><code>{escape(e.working_dir)}</code></td><td>{what}</td>"
                    f"<td>{escape('; '.join(e.reasons))}</td><td><code>{escape(e.run_id[:8])}</code></td></tr>")
    return ('<p class="muted">Changes to the state made without tfaudit (a plain terraform apply, a state edit):'
            " seen by the next tfaudit run, with which resources changed; who made them and which attributes"
            ' changed are not in the trail.</p><table id="out-of-band"><thead><tr><th>between</th><th>workspace</th>'
            "<th>directory</th><th>resources</th><th>what tfaudit saw</th><th>seen by run</th></tr></thead>"
            f"<tbody>{''.join(rows) or '<tr><td colspan=6 class=muted>none seen</td></tr>'}</tbody></table>")


def _runs(runs: Sequence[RunSummary], limit: int = 200) -> str:
    rows = []
    for r in runs[:limit]:
        ci = r.ci
        via = f"{ci.get('provider')}" + (f" {ci.get('repository')}" if ci and ci.get("repository") else "") if ci else ""
        rows.append(f"<tr><td>{_t(r.time)}</td><td>{escape(r.actor)}</td><td>{escape(via)}</td><td>{escape(r.workspace)}</td>"
                    f"<td>{escape(r.command)}</td><td>{_pill(r.status)}</td><td>{_counts(r.counts or r.planned)}</td>"
                    f"<td class=num>{len(r.findings)}</td><td><code>{escape(r.run_id[:8])}</code></td></tr>")
    more = f'<p class="muted">{len(runs) - limit} older runs not shown.</p>' if len(runs) > limit else ""
    return ('<table id="runs"><thead><tr><th>when</th><th>who</th><th>CI</th><th>workspace</th><th>command</th>'
            "<th>outcome</th><th>counts</th><th class=num>findings</th><th>run</th></tr></thead>"
            f"<tbody>{''.join(rows) or '<tr><td colspan=9 class=muted>no runs</td></tr>'}</tbody></table>{more}")


def render(model: ReportModel, statuses: Sequence[LedgerStatus], *, title: str = "tfaudit report",
           generated_at: str | None = None) -> str:
    runs = model.runs
    first = min((r.time for r in runs), default="")
    last = max((r.time for r in runs), default="")
    n_changes = sum(len(r.resources) for r in runs)
    generated = generated_at or datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    all_ok = bool(statuses) and all(s.state == "verified" for s in statuses)
    any_bad = any(s.state == "failed" for s in statuses)
    oob = len(model.out_of_band)
    verdict = ('<span class="ok">every ledger verified</span>' if all_ok else
               '<span class="bad">verification FAILED</span>' if any_bad else
               '<span class="warn">not fully verified</span>')
    # "verified" covers what tfaudit recorded; say what it could not see
    verdict += (f' (<span class="warn">{oob} change(s) made outside tfaudit</span>: only their effect on the state'
                " is known)" if oob else " (changes made outside tfaudit show once a later tfaudit run reads the state)")
    meta = json.dumps({"generator": f"tfaudit {__version__}", "runs": len(runs), "changes": n_changes,
                       "verified": all_ok, "out_of_band": oob})
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'; img-src data:">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="generator" content="tfaudit {escape(__version__)}">
<title>{escape(title)}</title><style>{CSS}</style></head>
<body data-report="{escape(meta)}">
<header><h1>{escape(title)}</h1>
<p>{len(runs)} runs, {n_changes} resource changes, {_t(first)} to {_t(last)} &middot; {verdict} &middot; generated {escape(generated)}</p></header>
<main>
<section id="verification-section"><h2>Ledger verification</h2>{_verification(statuses)}</section>
<section id="timeline-section"><h2>Runs over time</h2>{_legend(model)}{timeline_svg(runs)}</section>
<div class="grid">
<section><h2>Changes per actor</h2>{_tally_table(model.per_actor, "actor", "per-actor")}</section>
<section><h2>Changes per workspace</h2>{_tally_table(model.per_workspace, "workspace", "per-workspace")}</section>
</div>
<section><h2>Riskiest changes</h2><p class="muted">Score: finding severities, then the action
(delete, replace, update...), failure, and access- or data-sensitive resource types.</p>{_riskiest(model)}</section>
<section id="out-of-band-section"><h2>Changed outside tfaudit</h2>{_out_of_band(model)}</section>
<section><h2>Failed resources</h2>{_failed(model)}</section>
<section><h2>Runs</h2>{_runs(runs)}</section>
</main></body></html>
"""
