"""Run the rules over a plan and collect a report: counts, findings, the gate's verdict."""

from __future__ import annotations

import gc
import io
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timezone
from pathlib import Path
from typing import Any, BinaryIO

from tfaudit import __version__
from tfaudit.analysis import builtin
from tfaudit.analysis.model import SEVERITIES, Effect, Finding, RuleInfo, Severity, Waived, sort_key
from tfaudit.analysis.policy import Policy
from tfaudit.parse.plan import Plan, ResourceChange, parse_plans, plan_checks

REPORT_SCHEMA = "tfaudit.analysis/v1"
ACTION_ORDER = ("create", "update", "replace", "delete", "forget", "import", "move", "read", "no-op")


class Analyzer:
    """The rules as configured: built-ins with overrides, custom rules, waivers."""

    def __init__(self, policy: Policy | None = None, today: date | None = None) -> None:
        self.policy = policy or Policy()
        self.info: dict[str, RuleInfo] = self.policy.rule_info()
        self._disabled = self.policy.settings.disable
        self._custom = self.policy.custom
        today = today or datetime.now(timezone.utc).date()
        self._waivers = [w for w in self.policy.waivers if w.expires >= today]
        self._expired = [w for w in self.policy.waivers if w.expires < today]

    def finding(self, rule: str, address: str | None, message: str) -> Finding | None:
        info = self.info.get(rule)
        if info is None:  # disabled
            return None
        waived = None
        for w in self._waivers:
            if w.covers(rule, address):
                waived = Waived(w.reason, w.expires.isoformat())
                break
        return Finding(rule, info.severity, address, message, info.effect, info.category, info.why, waived)

    def check(self, ch: ResourceChange, word: str | None = None) -> list[Finding]:
        hits = builtin.evaluate(ch)
        out: list[Finding] = []
        for rule, message in hits:
            if rule not in self._disabled:
                f = self.finding(rule, ch.address, message)
                if f is not None:
                    out.append(f)
        if not self._custom:
            return out
        word = word or str(ch.action)
        if word == "no-op":
            return out
        for c in self._custom:
            # A read is only matched by rules that ask for it; nothing else happens to a data source.
            if (word == "read" and (c.actions is None or "read" not in c.actions)) or not c.matches(ch):
                continue
            f = self.finding(c.id, ch.address, c.message)
            if f is not None:
                out.append(f)
        return out

    def plan_findings(self, plan: Plan) -> list[Finding]:
        """Findings about the plan as a whole: it errored; a check or condition fails."""
        out: list[Finding | None] = []
        if plan.errored:
            out.append(self.finding("plan.errored", None, "terraform could not finish this plan (\"errored\": true): "
                                    "its changes are incomplete and it cannot be applied"))
        for c in plan_checks(plan):
            if c["status"] in ("fail", "error"):
                what = "errors" if c["status"] == "error" else "fails"
                problems = "; ".join(c["problems"]) or "no message"
                out.append(self.finding("check.failed", c["address"], f"{c['kind']} {what}: {problems}"))
        return [f for f in out if f is not None]

    def policy_findings(self) -> list[Finding]:
        """Findings about the configuration itself: expired waivers."""
        out = []
        for w in self._expired:
            f = self.finding("waiver.expired", w.address,
                             f"waiver for {w.rule} on {w.address} expired on {w.expires.isoformat()} ({w.reason})")
            if f is not None:
                out.append(f)
        return out


_WORDS = {("create",): "create", ("update",): "update", ("delete",): "delete", ("read",): "read",
          ("delete", "create"): "replace", ("create", "delete"): "replace", ("create", "forget"): "replace",
          ("forget",): "forget"}


def action_word(ch: ResourceChange) -> str:
    """ChangeAction's word (create, update, replace, import, move, ...), without its cost per call."""
    return _WORDS.get(ch.actions) or str(ch.action)


@dataclass
class Gate:
    fail_on: Severity | None
    denied: list[Finding]
    over_threshold: list[Finding]

    @property
    def blocked(self) -> bool:
        return bool(self.denied or self.over_threshold)

    def reason(self) -> str | None:
        if self.denied:
            f = self.denied[0]
            more = f" (and {len(self.denied) - 1} more)" if len(self.denied) > 1 else ""
            return f"denied by rule {f.rule}: {f.address or 'plan'}: {f.message}{more}"
        if self.over_threshold:
            f = self.over_threshold[0]
            n = len(self.over_threshold)
            return (f"{n} finding{'s' if n > 1 else ''} at or above {self.fail_on} (--fail-on): "
                    f"{f.rule} {f.severity}: {f.address or 'plan'}: {f.message}")
        return None

    def as_dict(self) -> dict[str, Any]:
        return {"fail_on": str(self.fail_on) if self.fail_on else None, "blocked": self.blocked,
                "reason": self.reason(), "denied": len(self.denied), "over_threshold": len(self.over_threshold)}


@dataclass
class AnalysisReport:
    sources: list[str] = field(default_factory=list)
    plans: int = 0
    terraform_versions: list[str] = field(default_factory=list)
    counts: Counter[str] = field(default_factory=Counter)
    resources: dict[str, list[str]] = field(default_factory=dict)
    drift: list[dict[str, Any]] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)
    errored: bool = False

    # -- collecting --------------------------------------------------------------------------
    def add_change(self, ch: ResourceChange, analyzer: Analyzer) -> list[Finding]:
        word = action_word(ch)
        self.counts[word] += 1
        if word not in ("no-op", "read"):
            self.resources.setdefault(word, []).append(ch.address)
        found = analyzer.check(ch, word)
        if found:
            self.findings.extend(found)
        return found

    def add_drift(self, d: ResourceChange) -> None:
        from tfaudit.records import changed_paths

        if d.actions in (("no-op",), ("read",)):
            return
        self.drift.append({"address": d.address, "actions": list(d.actions),
                           "changed_paths": changed_paths(d.before, d.after, d.after_unknown)[:50]})

    def add_plan_shell(self, plan: Plan, source: str, analyzer: Analyzer | None = None) -> None:
        if analyzer is not None:
            self.findings.extend(analyzer.plan_findings(plan))
        self.plans += 1
        if source not in self.sources:
            self.sources.append(source)
        if plan.terraform_version and plan.terraform_version not in self.terraform_versions:
            self.terraform_versions.append(plan.terraform_version)
        self.errored = self.errored or plan.errored

    def finish(self, extra: Iterable[Finding] = ()) -> AnalysisReport:
        self.findings.extend(extra)
        self.findings.sort(key=sort_key)
        return self

    # -- reading --------------------------------------------------------------------------------
    @property
    def active(self) -> list[Finding]:
        return [f for f in self.findings if f.active]

    def summary(self) -> dict[str, int]:
        return {a: self.counts[a] for a in ACTION_ORDER if self.counts.get(a)} | \
            {a: n for a, n in sorted(self.counts.items()) if a not in ACTION_ORDER}

    def severity_counts(self) -> dict[str, int]:
        c = Counter(str(f.severity) for f in self.active)
        return {str(s): c.get(str(s), 0) for s in reversed(SEVERITIES)}

    def gate(self, fail_on: Severity | str | None) -> Gate:
        sev = Severity(fail_on) if fail_on else None
        active = self.active
        denied = [f for f in active if f.effect == Effect.DENY]
        over = [f for f in active if sev is not None and f.severity.rank >= sev.rank]
        return Gate(sev, denied, over)

    def as_dict(self, fail_on: Severity | str | None = None) -> dict[str, Any]:
        return {
            "schema": REPORT_SCHEMA,
            "tfaudit_version": __version__,
            "sources": self.sources,
            "plans": self.plans,
            "terraform_versions": self.terraform_versions,
            "errored": self.errored,
            "summary": self.summary(),
            "severity_counts": self.severity_counts(),
            "findings": [f.as_dict() for f in self.findings],
            "resources": {a: self.resources[a] for a in ACTION_ORDER if a in self.resources},
            "drift": self.drift,
            "gate": self.gate(fail_on).as_dict(),
        }


# --- entry points ----------------------------------------------------------------------------------
def analyse_plan(plan: Plan, analyzer: Analyzer, report: AnalysisReport | None = None, source: str = "<plan>") -> AnalysisReport:
    """Analyse an already-parsed plan (what tfaudit apply/plan have in hand)."""
    report = report or AnalysisReport()
    report.add_plan_shell(plan, source, analyzer)
    for ch in plan.resource_changes:
        report.add_change(ch, analyzer)
    for d in plan.resource_drift:
        report.add_drift(d)
    return report


def analyse_bytes(data: bytes, analyzer: Analyzer, source: str) -> AnalysisReport:
    return analyse_stream(io.BytesIO(data), analyzer, source, full=lambda: data)


def analyse_file(path: Path, analyzer: Analyzer) -> AnalysisReport:
    from tfaudit.errors import PlanError

    try:
        f = path.open("rb")
    except OSError as e:
        raise PlanError(f"{path}: cannot read ({e.strerror or e.__class__.__name__})",
                        hint="pass a plan file, a saved plan, or - for stdin") from e
    def whole() -> bytes:  # only for what the streaming reader cannot take: bounded
        from tfaudit._bounded import MAX_WHOLE_DOCUMENT_BYTES, read_regular

        return read_regular(path, limit=MAX_WHOLE_DOCUMENT_BYTES, what="plan", error=PlanError,
                            hint="a plan this large must be plain UTF-8 'terraform show -json' output")

    with f:
        return analyse_stream(f, analyzer, str(path), full=whole)


def analyse_stream(f: BinaryIO, analyzer: Analyzer, source: str, full: Any) -> AnalysisReport:
    """Stream the plan when it is a plain UTF-8 document; otherwise (or on any doubt) parse it whole."""
    from tfaudit.parse.plan_stream import NotStreamable, stream_plan

    report = AnalysisReport()
    # Streaming allocates millions of short-lived, acyclic containers: reference counting
    # frees them, and the cyclic collector would only rescan the whole interpreter's heap
    # again and again (40% of the time on a small plan).
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        def on_change(ch: ResourceChange) -> None:
            report.add_change(ch, analyzer)

        shell = stream_plan(f, source, on_change, report.add_drift)
    except NotStreamable as e:
        if e.args == ("empty",):  # e.g. a gigabyte of whitespace: say so without reading it again
            from tfaudit.errors import PlanError

            raise PlanError(f"{source}: is empty", hint="pass a plan file, a saved plan, or - for stdin") from None
        report = AnalysisReport()
        for plan in parse_plans(full(), source=source):
            analyse_plan(plan, analyzer, report, source)
        return report.finish(analyzer.policy_findings())
    finally:
        if gc_was_enabled:
            gc.enable()
    report.add_plan_shell(shell, source, analyzer)
    return report.finish(analyzer.policy_findings())


def findings_by_address(findings: Sequence[Finding]) -> Mapping[str, list[Finding]]:
    out: dict[str, list[Finding]] = {}
    for f in findings:
        if f.address is not None:
            out.setdefault(f.address, []).append(f)
    return out


__all__ = ["ACTION_ORDER", "REPORT_SCHEMA", "Analyzer", "Gate", "AnalysisReport", "analyse_bytes",
           "analyse_file", "analyse_plan", "analyse_stream", "findings_by_address"]
