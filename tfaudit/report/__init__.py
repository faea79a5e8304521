"""Reports on the trail: a self-contained HTML page (`tfaudit report`) and CI step summaries in Markdown."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from tfaudit.query import Filters, Progress, runs
from tfaudit.trail.signing import Verifier

if TYPE_CHECKING:
    from tfaudit.report.model import ReportModel
    from tfaudit.report.verification import LedgerStatus


def build_report(sources: Sequence[str], verifiers: Sequence[Verifier], *, filters: Filters | None = None,
                 progress: Progress | None = None, env: Mapping[str, str] | None = None
                 ) -> tuple[ReportModel, list[LedgerStatus]]:
    """The report's content and each ledger's verification status (every file a folder holds)."""
    from tfaudit.query import sources_for
    from tfaudit.report import model, verification

    found = runs(sources, filters, progress, env)
    files = [name for name, _ in sources_for(list(sources), env)]
    return model.build(found), verification.statuses(files, verifiers, progress)


def html_report(sources: Sequence[str], verifiers: Sequence[Verifier], *, filters: Filters | None = None,
                progress: Progress | None = None, env: Mapping[str, str] | None = None,
                title: str = "tfaudit report") -> str:
    from tfaudit.report import html

    content, statuses = build_report(sources, verifiers, filters=filters, progress=progress, env=env)
    return html.render(content, statuses, title=title)


def write_html_report(out: Path, html_text: str) -> None:
    from tfaudit.errors import UsageError

    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = out.with_name(out.name + ".tmp")
        tmp.write_text(html_text, "utf-8")
        tmp.replace(out)
    except OSError as e:
        raise UsageError(f"cannot write the report {out}: {e.strerror}", hint="choose another --html path") from e
