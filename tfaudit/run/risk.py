"""The analysis inside `tfaudit apply` and `tfaudit plan`: findings for the records, and the gate."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from tfaudit.analysis.engine import AnalysisReport, Analyzer, Gate, analyse_plan
from tfaudit.analysis.policy import Policy
from tfaudit.parse.plan import Plan

if TYPE_CHECKING:
    from tfaudit.run.apply import Session

GATES = ("low", "medium", "high", "critical")


@dataclass
class RunAnalysis:
    report: AnalysisReport
    gate: Gate
    findings: list[dict[str, Any]]  # every finding of the plan, JSON-ready and redacted
    by_address: Mapping[str, list[dict[str, Any]]] = field(default_factory=dict)

    @property
    def blocked(self) -> bool:
        return self.gate.blocked

    @property
    def reason(self) -> str:
        return self.gate.reason() or ""

    def resource_findings(self, address: str) -> dict[str, Any]:
        """`{"findings": [...]}` for a resource.changed body, or {} when it has none."""
        found = self.by_address.get(address)
        return {"findings": found} if found else {}


def fail_on_for(session: Session, policy: Policy) -> str | None:
    from tfaudit.errors import UsageError

    value = getattr(session.inv, "fail_on", None) or session.env.get("TFAUDIT_FAIL_ON") or (
        str(policy.settings.fail_on) if policy.settings.fail_on else None)
    if value is not None and value not in GATES:
        raise UsageError(f"--fail-on must be one of {', '.join(GATES)}, not {value!r}", hint="or unset TFAUDIT_FAIL_ON")
    return value


def analyse_run(session: Session, plan: Plan) -> RunAnalysis:
    policy = Policy.from_config(session.config)
    analyzer = Analyzer(policy)
    report = analyse_plan(plan, analyzer, source="plan").finish(analyzer.policy_findings())
    gate = report.gate(fail_on_for(session, policy))
    scrub = session.redactor.scrub
    findings: list[dict[str, Any]] = []
    by_address: dict[str, list[dict[str, Any]]] = {}
    for f in report.findings:
        d = f.as_dict()
        d["message"] = scrub(d["message"])
        findings.append(d)
        if f.address is not None:
            by_address.setdefault(f.address, []).append(d)
    for f in report.findings:
        if f.active and f.severity.rank >= 3:
            session.console.warn(f"tfaudit: {f.severity}: {f.rule}: {f.address or 'plan'}: {scrub(f.message)}")
    active = len(report.active)
    if active:
        counts = ", ".join(f"{n} {s}" for s, n in report.severity_counts().items() if n)
        session.console.note(f"{active} finding{'s' if active != 1 else ''} ({counts}): "
                             "'tfaudit analyze PLAN' shows them all")
    return RunAnalysis(report, gate, findings, by_address)
