"""The gates before terraform changes anything, and their one decision.

Risk rules (deny effects, --fail-on), plan binding (a saved plan file tied to the
`plan.recorded` record of its sha256; `require_recorded_plan` refuses one that is not),
the identity cross-check (the config's `expect` block) and out-of-band state all give
findings of one type, `tfaudit.analysis.model.Finding`; `decide` turns them into one
`RunGate`: the findings to record and the refusal, if any (exit 5, nothing applied).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tfaudit.analysis.engine import AnalysisReport, Analyzer, analyse_plan
from tfaudit.analysis.engine import Gate as RiskGate
from tfaudit.analysis.model import Finding
from tfaudit.analysis.policy import Policy
from tfaudit.errors import PolicyError, UsageError
from tfaudit.identity import expect as identity_expect
from tfaudit.parse.plan import Plan
from tfaudit.run import binding
from tfaudit.run.outofband import OutOfBand
from tfaudit.run.session import Session

if TYPE_CHECKING:
    from tfaudit.config import Config

GATES = ("low", "medium", "high", "critical")


def finding_dicts(findings: list[Finding], scrub: Any) -> list[dict[str, Any]]:
    """Findings as recorded: JSON-ready, messages redacted."""
    out = []
    for f in findings:
        d = f.as_dict()
        d["message"] = scrub(d["message"])
        out.append(d)
    return out


# --- risk rules ------------------------------------------------------------------------------
@dataclass
class RunAnalysis:
    report: AnalysisReport
    gate: RiskGate
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
    value = session.inv.fail_on or session.env.get("TFAUDIT_FAIL_ON") or (
        str(policy.settings.fail_on) if policy.settings.fail_on else None)
    if value is not None and value not in GATES:
        raise UsageError(f"--fail-on must be one of {', '.join(GATES)}, not {value!r}", hint="or unset TFAUDIT_FAIL_ON")
    return value


def analyse_run(session: Session, plan: Plan) -> RunAnalysis:
    policy = Policy.from_config(session.config)
    analyzer = Analyzer(policy)
    report = analyse_plan(plan, analyzer, source="plan").finish(analyzer.policy_findings())
    scrub = session.redactor.scrub
    analysis = run_analysis(report, report.gate(fail_on_for(session, policy)), scrub)
    for f in report.findings:
        if f.active and f.severity.rank >= 3:
            session.console.warn(f"tfaudit: {f.severity}: {f.rule}: {f.address or 'plan'}: {scrub(f.message)}")
    active = len(report.active)
    if active:
        counts = ", ".join(f"{n} {s}" for s, n in report.severity_counts().items() if n)
        session.console.note(f"{active} finding{'s' if active != 1 else ''} ({counts}): "
                             "'tfaudit analyze PLAN' shows them all")
    return analysis


def run_analysis(report: AnalysisReport, gate: RiskGate, scrub: Any) -> RunAnalysis:
    """The report's findings as recorded (redacted by scrub), and by resource address."""
    findings = finding_dicts(report.findings, scrub)
    by_address: dict[str, list[dict[str, Any]]] = {}
    for f, d in zip(report.findings, findings):
        if f.address is not None:
            by_address.setdefault(f.address, []).append(d)
    return RunAnalysis(report, gate, findings, by_address)


# --- out-of-band state -----------------------------------------------------------------------
def out_of_band_findings(oob: OutOfBand, config: Config) -> list[Finding]:
    """The `state.out-of-band` finding, as the config rates it (none when it is disabled)."""
    found = Analyzer(Policy.from_config(config)).finding("state.out-of-band", None, oob.message())
    return [found] if found is not None else []


# --- the one decision ------------------------------------------------------------------------
@dataclass(frozen=True)
class RunGate:
    """What the gates decided before approval: the findings to record, and the refusal if any."""

    analysis: RunAnalysis
    findings: list[dict[str, Any]]  # risk, binding and identity findings, JSON-ready and redacted
    refusal: PolicyError | None
    reason: str | None  # why it was refused, for the run.finished record
    bound_to: dict[str, Any] | None  # the plan.recorded record a saved plan file links to


def decide(session: Session, plan: Plan, plan_sha: str, saved_plan: tuple[str, Path] | None) -> RunGate:
    """Run every gate; risk rules refuse first, then plan binding, then the identity cross-check."""
    analysis = analyse_run(session, plan)
    bound_to: dict[str, Any] | None = None
    refusal: PolicyError | None = None
    found: list[Finding] = []
    if saved_plan is not None:
        given, path = saved_plan
        looked = binding.lookup(session.store, plan_sha, path, session.signer,
                                binding.accepted_verifiers(session.config.section("plan_keys", ())))
        bound_to = looked.link()
        if bound_to is None and session.config.section("require_recorded_plan", False):
            refusal = binding.refusal(looked, given, plan_sha)
            found.append(binding.finding(refusal))
    expect = session.config.section("expect")
    identity = identity_expect.check(session.actor, expect)
    for f in identity:
        session.console.warn(f"tfaudit: {f.severity}: {f.rule}: {f.message}")
    found += identity
    if refusal is None and identity_expect.blocking(identity, expect):
        refusal = PolicyError(f"blocked: {identity[0].message}",
                              hint="expect.on_mismatch = \"deny\" refuses this apply; run it from the expected CI")
    findings = [*analysis.findings, *finding_dicts(found, session.redactor.scrub)]
    if analysis.blocked:
        reason = analysis.reason
        refusal = PolicyError(
            f"blocked by policy: {session.redactor.scrub(reason)[:500]}",
            hint="nothing was applied; fix the plan, or change the rule, severity gate or waiver in .tfaudit.hcl")
        return RunGate(analysis, findings, refusal, reason, bound_to)
    return RunGate(analysis, findings, refusal, refusal.message if refusal else None, bound_to)
