"""Four views of one report: a terminal table, Markdown, JSON and SARIF 2.1.0."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from enum import StrEnum
from pathlib import Path, PurePath
from typing import Any, TextIO
from urllib.parse import quote

from tfaudit import __version__
from tfaudit.analysis.engine import ACTION_ORDER, AnalysisReport, findings_by_address
from tfaudit.analysis.model import Finding, RuleInfo, Severity

SYMBOLS = {"create": "+", "update": "~", "replace": "-/+", "delete": "-", "forget": ".", "import": "<=",
           "move": "->", "read": "<=", "no-op": " "}
TABLE_FINDINGS_MAX = 200
TABLE_RESOURCES_MAX = 20
MD_FINDINGS_MAX = 100
MD_RESOURCES_MAX = 50


class OutputFormat(StrEnum):
    TABLE = "table"
    MARKDOWN = "markdown"
    JSON = "json"
    SARIF = "sarif"


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def _changes_line(report: AnalysisReport) -> str:
    summary = report.summary()
    parts = [f"{n} {a}" for a, n in summary.items() if a not in ("no-op",)]
    line = ", ".join(parts) if parts else "no resource changes"
    if summary.get("no-op"):
        line += f" ({summary['no-op']} unchanged)"
    return line


def _severity_line(report: AnalysisReport) -> str:
    counts = report.severity_counts()
    total = sum(counts.values())
    waived = sum(1 for f in report.findings if not f.active)
    if not total:
        line = "none"
    else:
        line = ", ".join(f"{n} {s}" for s, n in counts.items() if n)
    return line + (f" ({waived} waived)" if waived else "")


def _gate_line(report: AnalysisReport, fail_on: Severity | str | None) -> str | None:
    gate = report.gate(fail_on)
    if gate.blocked:
        return f"BLOCKED (exit 5): {gate.reason()}"
    if fail_on:
        return f"passed: no finding at or above {fail_on}, no deny rule matched"
    return None


# --- terminal table ------------------------------------------------------------------------------
def render_table(report: AnalysisReport, out: TextIO, fail_on: Severity | str | None = None) -> None:
    w = out.write
    src = ", ".join(report.sources) or "plan"
    tv = f" (terraform {', '.join(report.terraform_versions)})" if report.terraform_versions else ""
    plans = f", {report.plans} plans" if report.plans > 1 else ""
    w(f"Plan: {src}{tv}{plans}\n")
    w(f"Changes: {_changes_line(report)}\n")
    if report.drift:
        w(f"Drift: {_plural(len(report.drift), 'resource')} changed outside terraform since the last apply\n")
    w(f"Findings: {_severity_line(report)}\n")
    shown = report.findings[:TABLE_FINDINGS_MAX]
    if shown:
        sev_w = max(8, *(len(str(f.severity)) for f in shown))
        rule_w = max(4, *(len(f.rule) for f in shown))
        addr_w = min(60, max(7, *(len(f.address or "-") for f in shown)))
        w("\n")
        w(f"  {'SEVERITY':<{sev_w}}  {'RULE':<{rule_w}}  {'ADDRESS':<{addr_w}}  MESSAGE\n")
        for f in shown:
            sev = str(f.severity) + ("*" if not f.active else "")
            w(f"  {sev:<{sev_w}}  {f.rule:<{rule_w}}  {(f.address or '-'):<{addr_w}}  {f.message}"
              + (f"  [waived: {f.waived.reason}, until {f.waived.expires}]" if f.waived else "") + "\n")
        if len(report.findings) > len(shown):
            w(f"  ... and {len(report.findings) - len(shown)} more (--format json lists every finding)\n")
    per = findings_by_address(report.findings)
    if report.resources:
        w("\nResources by action:\n")
        for action in ACTION_ORDER:
            addrs = report.resources.get(action)
            if not addrs:
                continue
            w(f"  {SYMBOLS.get(action, '?'):>3} {action} ({len(addrs)})\n")
            for a in addrs[:TABLE_RESOURCES_MAX]:
                n = len(per.get(a, ()))
                w(f"        {a}" + (f"  [{_plural(n, 'finding')}]" if n else "") + "\n")
            if len(addrs) > TABLE_RESOURCES_MAX:
                w(f"        ... and {len(addrs) - TABLE_RESOURCES_MAX} more\n")
    gate = _gate_line(report, fail_on)
    if gate:
        w(f"\nGate: {gate}\n")


# --- Markdown --------------------------------------------------------------------------------------
def _cell(text: str) -> str:
    return text.replace("\\", "\\\\").replace("|", "\\|").replace("\n", " ").replace("<", "&lt;")


def _code(text: str) -> str:
    return "`" + text.replace("`", "'").replace("|", "\\|") + "`"


def render_markdown(report: AnalysisReport, out: TextIO, fail_on: Severity | str | None = None) -> None:
    w = out.write
    gate = report.gate(fail_on)
    w("### tfaudit plan analysis\n\n")
    if gate.blocked:
        w(f"> **Blocked by policy** (exit 5): {_cell(gate.reason() or '')}\n\n")
    w(f"**Changes:** {_changes_line(report)}  \n")
    if report.drift:
        w(f"**Drift:** {_plural(len(report.drift), 'resource')} changed outside terraform  \n")
    w(f"**Findings:** {_severity_line(report)}\n\n")
    if report.findings:
        w("| Severity | Rule | Address | Finding |\n|---|---|---|---|\n")
        for f in report.findings[:MD_FINDINGS_MAX]:
            sev = f"**{f.severity}**" if f.severity.rank >= Severity.HIGH.rank else str(f.severity)
            if f.waived:
                sev = f"~~{f.severity}~~ waived"
            msg = _cell(f.message) + (f" _(waived until {f.waived.expires}: {_cell(f.waived.reason)})_" if f.waived else "")
            w(f"| {sev} | {_code(f.rule)} | {_code(f.address) if f.address else '-'} | {msg} |\n")
        if len(report.findings) > MD_FINDINGS_MAX:
            w(f"\n_{len(report.findings) - MD_FINDINGS_MAX} more findings not shown (see `--format json`)._\n")
        w("\n")
    if report.resources:
        total = sum(len(v) for v in report.resources.values())
        w(f"<details><summary>Resources by action ({total})</summary>\n\n")
        for action in ACTION_ORDER:
            addrs = report.resources.get(action)
            if not addrs:
                continue
            w(f"**{action}** ({len(addrs)})\n\n")
            for a in addrs[:MD_RESOURCES_MAX]:
                w(f"- {_code(a)}\n")
            if len(addrs) > MD_RESOURCES_MAX:
                w(f"- ... and {len(addrs) - MD_RESOURCES_MAX} more\n")
            w("\n")
        w("</details>\n")
    if fail_on and not gate.blocked:
        w(f"\nGate passed: no finding at or above **{fail_on}**.\n")


# --- JSON --------------------------------------------------------------------------------------------
def render_json(report: AnalysisReport, out: TextIO, fail_on: Severity | str | None = None) -> None:
    """Pretty at the top level, one finding per line: readable, diffable, and fast for big plans."""
    doc = report.as_dict(fail_on)
    compact = json.JSONEncoder(ensure_ascii=False, separators=(", ", ": ")).encode
    w = out.write
    w("{\n")
    keys = list(doc)
    for i, key in enumerate(keys):
        value = doc[key]
        end = ",\n" if i < len(keys) - 1 else "\n"
        if key in ("findings", "drift") and value:
            w(f'  "{key}": [\n')
            w(",\n".join("    " + compact(v) for v in value))
            w("\n  ]" + end)
        elif key == "resources" and value:
            w('  "resources": {\n')
            w(",\n".join(f"    {compact(a)}: {compact(v)}" for a, v in value.items()))
            w("\n  }" + end)
        else:
            w(f"  {compact(key)}: {compact(value)}{end}")
    w("}\n")


# --- SARIF 2.1.0 -----------------------------------------------------------------------------------
SARIF_LEVEL = {Severity.CRITICAL: "error", Severity.HIGH: "error", Severity.MEDIUM: "warning",
               Severity.LOW: "note", Severity.INFO: "note"}
SECURITY_SEVERITY = {Severity.CRITICAL: "9.5", Severity.HIGH: "8.0", Severity.MEDIUM: "5.5",
                     Severity.LOW: "3.0", Severity.INFO: "1.0"}


def _artifact_uri(source: str) -> str:
    if source in ("-", "<stdin>"):
        return "plan.json"
    p = PurePath(source)
    if p.is_absolute():
        return "file://" + quote(p.as_posix())
    return quote(p.as_posix())


def _sarif_rule(info: RuleInfo) -> dict[str, Any]:
    return {
        "id": info.id,
        "name": "".join(part.capitalize() for part in info.id.replace("-", ".").replace("_", ".").split(".")),
        "shortDescription": {"text": info.title},
        "fullDescription": {"text": info.why},
        "help": {"text": f"{info.title}. {info.why}"},
        "defaultConfiguration": {"level": SARIF_LEVEL[info.severity]},
        "properties": {"tags": ["security", "terraform", info.category], "security-severity":
                       SECURITY_SEVERITY[info.severity], "tfaudit-severity": str(info.severity),
                       "tfaudit-effect": str(info.effect)},
    }


class _Artifacts:
    """The run's artifacts: the plan first (index 0), then each `.tf` file a result points at."""

    def __init__(self, plan_uri: str, config_dir: Path | None) -> None:
        from tfaudit.analysis.locate import ConfigLocator, repository_root

        self.plan_uri = plan_uri
        self.list: list[dict[str, Any]] = [{"location": {"uri": plan_uri}, "roles": ["analysisTarget"]}]
        self.index: dict[str, int] = {}
        self.locator = ConfigLocator(config_dir) if config_dir else None
        self.base = repository_root(config_dir) if config_dir else None

    def plan_location(self) -> dict[str, Any]:
        return {"physicalLocation": {"artifactLocation": {"uri": self.plan_uri, "index": 0}}}

    def code_location(self, address: str) -> dict[str, Any] | None:
        """The `.tf` file and line of the block that declares address (or the module call that brings it in)."""
        if self.locator is None or self.base is None:
            return None
        loc = self.locator.in_repository(address, self.base)
        if loc is None:
            return None
        try:
            uri = quote(loc.file.relative_to(self.base).as_posix())
        except ValueError:
            return None
        if uri not in self.index:
            self.index[uri] = len(self.list)
            self.list.append({"location": {"uri": uri, "uriBaseId": "%SRCROOT%"}, "roles": ["resultFile"],
                              "sourceLanguage": "terraform"})
        return {"physicalLocation": {"artifactLocation": {"uri": uri, "uriBaseId": "%SRCROOT%",
                                                          "index": self.index[uri]},
                                     "region": {"startLine": loc.line}}}


def sarif_document(report: AnalysisReport, rules: Mapping[str, RuleInfo], config_dir: Path | None = None) -> dict[str, Any]:
    """SARIF 2.1.0; with config_dir (the root module), each result sits on its resource block's line."""
    index = {rid: i for i, rid in enumerate(rules)}
    artifacts = _Artifacts(_artifact_uri(report.sources[0] if report.sources else "plan.json"), config_dir)
    results = [_sarif_result(f, index, artifacts) for f in report.findings]
    run: dict[str, Any] = {
        "tool": {"driver": {"name": "tfaudit", "version": __version__, "semanticVersion": __version__,
                            "rules": [_sarif_rule(info) for info in rules.values()]}},
        "automationDetails": {"id": "tfaudit/analyze/"},
        "artifacts": artifacts.list,
        "results": results,
        "properties": {"summary": report.summary(), "severity_counts": report.severity_counts()},
    }
    if artifacts.base is not None:
        run["originalUriBaseIds"] = {"%SRCROOT%": {"uri": artifacts.base.as_uri() + "/"}}
    return {"$schema": "https://json.schemastore.org/sarif-2.1.0.json", "version": "2.1.0", "runs": [run]}


def _sarif_result(f: Finding, index: Mapping[str, int], artifacts: _Artifacts) -> dict[str, Any]:
    fingerprint = hashlib.sha256(f"{f.rule}\x00{f.address or ''}\x00{f.message}".encode()).hexdigest()
    logical = {"logicalLocations": [{"fullyQualifiedName": f.address, "kind": "resource"}]} if f.address else {}
    code = artifacts.code_location(f.address) if f.address else None
    result: dict[str, Any] = {
        "ruleId": f.rule,
        "level": SARIF_LEVEL[f.severity],
        "message": {"text": f"{f.address}: {f.message}" if f.address else f.message},
        "locations": [{**(code or artifacts.plan_location()), **logical}],
        "partialFingerprints": {"tfauditFinding/v1": fingerprint},
        "properties": {"severity": str(f.severity), "effect": str(f.effect), "category": f.category,
                       "security-severity": SECURITY_SEVERITY[f.severity]},
    }
    if code is not None:  # the plan that produced the finding stays reachable
        result["relatedLocations"] = [{"id": 1, **artifacts.plan_location(),
                                       "message": {"text": "the plan this finding comes from"}}]
    if f.rule in index:
        result["ruleIndex"] = index[f.rule]
    if f.waived:
        result["suppressions"] = [{"kind": "external", "status": "accepted",
                                   "justification": f"{f.waived.reason} (until {f.waived.expires})"}]
    return result


def render_sarif(report: AnalysisReport, out: TextIO, rules: Mapping[str, RuleInfo], config_dir: Path | None = None) -> None:
    json.dump(sarif_document(report, rules, config_dir), out, indent=2, ensure_ascii=False)
    out.write("\n")


def render(fmt: OutputFormat, report: AnalysisReport, out: TextIO, *, fail_on: Severity | str | None,
           rules: Mapping[str, RuleInfo], config_dir: Path | None = None) -> None:
    if fmt is OutputFormat.TABLE:
        render_table(report, out, fail_on)
    elif fmt is OutputFormat.MARKDOWN:
        render_markdown(report, out, fail_on)
    elif fmt is OutputFormat.JSON:
        render_json(report, out, fail_on)
    else:
        render_sarif(report, out, rules, config_dir)
