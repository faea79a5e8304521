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
    """The report's content and each ledger's verification status (every file a folder holds).

    The ledgers are verified in worker processes (tfaudit.trail.workers), driven from a thread,
    while this process reads the runs: the two halves of the work overlap on the cores."""
    from concurrent.futures import ThreadPoolExecutor

    from tfaudit.query import sources_for
    from tfaudit.report import model, verification

    files = [name for name, _ in sources_for(list(sources), env)]
    with ThreadPoolExecutor(1, thread_name_prefix="tfaudit-verify") as pool:
        # one producer per bar: the bar follows the reading (two halves adding totals at
        # different times made it go back from 100%); the verification overlaps it unseen
        checked = pool.submit(verification.statuses, files, verifiers, None)
        found = runs(sources, filters, progress, env)
        return model.build(found), checked.result()


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
