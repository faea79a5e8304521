"""An apply's planned changes, from `terraform show -json` to their records, one change at a time.

`tfaudit apply` reads the plan once (`read_plan`): the streaming reader validates each resource
change, the redactor learns its sensitive values, and the change's JSON text goes to a private
temporary file (tfaudit.parse.spool), so a 100,000-change plan is never held decoded. The changes
that get a `resource.changed` record (`PlanRead.changes`) are decoded again one at a time where
their bodies are built: the planned bodies for the journal before terraform runs, and the bodies
with their outcomes after. Every secret is learned before the first body is built, so redaction
is the same as when the plan was parsed whole.
"""

from __future__ import annotations

import io
from array import array
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from tfaudit import records
from tfaudit.parse.events import ApplyTracker
from tfaudit.parse.plan import Plan, ResourceChange
from tfaudit.parse.spool import KEEP_DECODED, ChangeSequence, ChangeSpool, read_plan_spooled
from tfaudit.parse.state import State
from tfaudit.redact import Redactor
from tfaudit.run import outcomes
from tfaudit.run.gates import RunAnalysis
from tfaudit.schema import RecordType


class Picked(ChangeSequence):
    """The changes of `base` at `indices` (in order), decoded when asked."""

    def __init__(self, base: Sequence[ResourceChange], indices: Sequence[int]) -> None:
        self._base = base
        self._indices = indices

    def __len__(self) -> int:
        return len(self._indices)

    def _at(self, i: int) -> ResourceChange:
        return self._base[self._indices[i]]

    def __iter__(self) -> Iterator[ResourceChange]:
        if len(self._indices) == len(self._base):  # all of them: the base's own (windowed) reading
            return iter(self._base)
        return (self._base[j] for j in self._indices)


@dataclass(frozen=True)
class PlanRead:
    """The plan, and the resource changes that get a resource.changed record (in plan order)."""

    plan: Plan
    changes: Sequence[ResourceChange]

    def close(self) -> None:
        """Drop the spooled changes' file (it is unlinked already: this frees the disk space now)."""
        if isinstance(self.plan.resource_changes, ChangeSpool):
            self.plan.resource_changes.close()


def read_plan(data: bytes | BinaryIO, source: str, redactor: Redactor, spool_dir: Path | None, *,
              keep_decoded: int = KEEP_DECODED) -> PlanRead:
    """The plan from `terraform show -json` output (bytes, or a binary file to stream), every value it
    marks sensitive learned by `redactor`; its resource changes spooled in `spool_dir` (kept decoded
    as well while their JSON text is under keep_decoded bytes)."""
    recorded = array("Q")
    seen = [0]

    def on_change(ch: ResourceChange) -> None:
        records.learn_change_secrets(ch, redactor)
        if records.is_recorded_change(ch):
            recorded.append(seen[0])
        seen[0] += 1

    f = io.BytesIO(data) if isinstance(data, bytes) else data
    plan = read_plan_spooled(f, source, whole=lambda: _whole(data, f), directory=spool_dir, on_change=on_change,
                             keep_decoded=keep_decoded)
    records.learn_plan_secrets(plan, redactor, changes=False)
    return PlanRead(plan, Picked(plan.resource_changes, recorded))


def _whole(data: bytes | BinaryIO, f: BinaryIO) -> bytes:
    if isinstance(data, bytes):
        return data
    f.seek(0)
    return f.read()


def planned_bodies(changes: Iterable[ResourceChange], redactor: Redactor,
                   analysis: RunAnalysis) -> Iterator[dict[str, Any]]:
    """The `planned` resource.changed bodies (redacted, with their findings), for the journal."""
    planned = records.Outcome("planned")
    for ch in changes:
        yield {**records.resource_body(ch, planned, redactor), **analysis.resource_findings(ch.address)}


def resource_bodies(changes: Sequence[ResourceChange], tracker: ApplyTracker, rc: int, interrupted: bool,
                    state_after: State | None, redactor: Redactor, analysis: RunAnalysis) -> Iterator[dict[str, Any]]:
    """Each change's resource.changed body with its outcome (tfaudit.run.outcomes), one at a time."""
    for ch, outcome in outcomes.resolve_each(changes, tracker, exit_code=rc, interrupted=interrupted,
                                             state_after=state_after):
        yield {**records.resource_body(ch, outcome, redactor), **analysis.resource_findings(ch.address)}


def changed_records(record: Callable[..., dict[str, Any]], changes: Sequence[ResourceChange], tracker: ApplyTracker,
                    rc: int, interrupted: bool, state_after: State | None, redactor: Redactor,
                    analysis: RunAnalysis, counts: dict[str, int]) -> Iterator[dict[str, Any]]:
    """The run's resource.changed records, one at a time (`record(type, **body)` makes one), each
    status counted into `counts` as its record is made."""
    for body in resource_bodies(changes, tracker, rc, interrupted, state_after, redactor, analysis):
        counts[body["status"]] = counts.get(body["status"], 0) + 1
        yield record(RecordType.RESOURCE_CHANGED, resource=body)


__all__ = ["PlanRead", "Picked", "changed_records", "planned_bodies", "read_plan", "resource_bodies"]
