"""One CI step: run a tfaudit command, then summarise exactly the records it appended."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tfaudit.query import RunSummary, add_record
from tfaudit.trail.jsonline import BadLine, parse_line
from tfaudit.trail.store import open_store


@dataclass(frozen=True)
class StepResult:
    exit_code: int
    records: list[dict[str, Any]]
    runs: list[RunSummary]

    @property
    def seqs(self) -> tuple[int, int] | None:
        seqs = [r["chain"]["seq"] for r in self.records if isinstance(r.get("chain"), dict)]
        return (min(seqs), max(seqs)) if seqs else None

    def outputs(self) -> dict[str, str]:
        """Step outputs: outcome, exit-code, records, changes, succeeded, failed, findings, run-id, plan-sha256."""
        last = self.runs[-1] if self.runs else None
        resources = [r for run in self.runs for r in run.resources]
        outcome = last.status if last else ("error" if self.exit_code else "not-recorded")
        return {
            "outcome": outcome,
            "exit-code": str(self.exit_code),
            "records": str(len(self.records)),
            "changes": str(len(resources) if resources or not last else sum(last.planned.values())),
            "succeeded": str(sum(r.get("status") == "succeeded" for r in resources)),
            "failed": str(sum(r.get("status") == "failed" for r in resources)),
            "findings": str(sum(len(run.findings) for run in self.runs)),
            "run-id": last.run_id if last else "",
            "plan-sha256": (last.plan_sha256 or "") if last else "",
        }


def ledger_mark(ledger: str | Path) -> int:
    """The ledger's newest position before the step runs (0 when it does not exist yet)."""
    return open_store(ledger).tail().seq


def records_after(ledger: str | Path, mark: int) -> list[dict[str, Any]]:
    """Records appended past position `mark` (the ledger is append-only, so these are the step's)."""
    store = open_store(ledger)
    if not store.exists():
        return []
    out = []
    for _, line in store.lines(mark + 1):
        try:
            out.append(parse_line(line))
        except BadLine:
            continue
    return out


def summarise(exit_code: int, records: list[dict[str, Any]], source: str) -> StepResult:
    by_id: dict[str, RunSummary] = {}
    for rec in records:
        add_record(by_id, source, rec)
    return StepResult(exit_code, records, sorted(by_id.values(), key=lambda r: r.time))


_SAFE = re.compile(r"[\r\n]")


def write_outputs(path: Path, outputs: Mapping[str, str], fmt: str) -> None:
    """GitHub's $GITHUB_OUTPUT (key=value) or a GitLab dotenv report (TFAUDIT_KEY=value)."""
    lines = []
    for k, v in outputs.items():
        value = _SAFE.sub(" ", v)
        if fmt == "dotenv":
            lines.append(f"TFAUDIT_{k.upper().replace('-', '_')}={value}")
        else:
            lines.append(f"{k}={value}")
    with path.open("a", encoding="utf-8") as f:
        f.write("\n".join(lines) + "\n")


def append_text(path: Path, text: str) -> None:
    with path.open("a", encoding="utf-8") as f:
        f.write(text)


def command_names(argv: Sequence[str]) -> str:
    return " ".join(argv)
