"""The vocabulary of risk analysis: severities, effects, rule descriptions and findings."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from tfaudit.records import Severity as Severity  # re-exported: the analysis vocabulary

SEVERITIES: tuple[Severity, ...] = tuple(sorted(Severity, key=lambda s: s.rank))
GATE_SEVERITIES: tuple[str, ...] = ("low", "medium", "high", "critical")


class Effect(StrEnum):
    """What a finding does beyond being reported."""

    WARN = "warn"  # reported and recorded
    DENY = "deny"  # blocks `tfaudit apply` before terraform applies anything (exit 5)
    ALERT = "alert"  # reported, recorded, and routed to alert sinks


@dataclass(frozen=True, slots=True)
class RuleInfo:
    id: str
    severity: Severity
    category: str
    title: str
    why: str
    effect: Effect = Effect.WARN
    builtin: bool = True


@dataclass(frozen=True, slots=True)
class Waived:
    reason: str
    expires: str


@dataclass(frozen=True, slots=True)
class Finding:
    rule: str
    severity: Severity
    address: str | None
    message: str
    effect: Effect
    category: str
    why: str
    waived: Waived | None = None

    @property
    def active(self) -> bool:
        """Counts for gates and summaries (not waived)."""
        return self.waived is None

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "rule": self.rule,
            "severity": str(self.severity),
            "effect": str(self.effect),
            "category": self.category,
            "address": self.address,
            "message": self.message,
            "why": self.why,
        }
        if self.waived is not None:
            out["waived"] = {"reason": self.waived.reason, "expires": self.waived.expires}
        return out

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Finding:
        waived = d.get("waived")
        return cls(
            rule=str(d["rule"]), severity=Severity(d["severity"]), address=d.get("address"),
            message=str(d.get("message", "")), effect=Effect(d.get("effect", "warn")),
            category=str(d.get("category", "")), why=str(d.get("why", "")),
            waived=Waived(str(waived["reason"]), str(waived["expires"])) if isinstance(waived, Mapping) else None,
        )


def sort_key(f: Finding) -> tuple[int, str, str, str]:
    return (-f.severity.rank, f.address or "", f.rule, f.message)
