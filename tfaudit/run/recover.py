"""Finishing runs whose tfaudit died: from the journal terraform kept writing, and the state.

A run is unfinished when the ledger has its `run.started` and no `run.finished`. When its
journal is here (see tfaudit.run.journal) and no tfaudit process holds it, the run is
completed: tfaudit waits for terraform if it is still applying, reads the journal for each
planned change's outcome, checks it against the state, and appends the `resource.changed`
records and a `run.finished` whose `outcome.recovered` says when, by whom and from what.
What the evidence cannot tell is `unknown`, never `succeeded`. Every recorded command does
this first for the ledger it writes; `tfaudit recover` does it on demand, and also closes
unfinished runs that left no journal here (status `unknown`).
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tfaudit import records
from tfaudit.parse.events import ApplyTracker, parse_event_line
from tfaudit.parse.plan import ResourceChange
from tfaudit.parse.state import State
from tfaudit.run import outcomes
from tfaudit.run.journal import Journal, RunLock, journal_dir, pending
from tfaudit.run.outofband import load_state
from tfaudit.run.publish import publish
from tfaudit.run.session import Invocation, Session, open_session
from tfaudit.schema import RecordType
from tfaudit.terraform import proc as _proc
from tfaudit.terraform.binary import Terraform
from tfaudit.trail.store import LedgerStore
from tfaudit.ui.console import Console

_CHANGED = {"create", "update"}


@dataclass(frozen=True)
class Recovered:
    run_id: str
    status: str
    counts: Mapping[str, int]
    from_journal: bool

    def describe(self) -> str:
        counts = ", ".join(f"{v} {k}" for k, v in self.counts.items() if v) or "no changes"
        how = "from its journal and the state" if self.from_journal else "without a journal: outcome unknown"
        return f"run {self.run_id}: {self.status} ({counts}), {how}"


def unfinished_runs(store: LedgerStore) -> dict[str, dict[str, Any]]:
    """run id -> its run.started record, for every run the ledger never finished."""
    if not store.exists():
        return {}
    open_runs: dict[str, dict[str, Any]] = {}
    for rec in store.records():
        run = rec.get("run")
        run_id = run.get("id") if isinstance(run, dict) else None
        if not isinstance(run_id, str):
            continue
        if rec.get("type") == RecordType.RUN_STARTED:
            open_runs[run_id] = rec
        elif rec.get("type") == RecordType.RUN_FINISHED:
            open_runs.pop(run_id, None)
    return open_runs


def recover(session: Session, *, include_unjournaled: bool = False) -> list[Recovered]:
    """Complete the unfinished runs of the session's ledger that can be completed now."""
    journals = pending(journal_dir(session.local_dir))
    if not journals and not include_unjournaled:
        return []
    open_runs = unfinished_runs(session.store)
    done: list[Recovered] = []
    live: set[str] = set()
    for journal in journals:
        lock = RunLock(journal)
        if not lock.acquire(wait=False):
            live.add(journal.run_id)  # its tfaudit is still running it
            continue
        try:
            meta = journal.read_meta()
            if meta is None or meta.get("ledger") != session.store.url:
                continue  # another ledger's journal, in the same directory
            started = open_runs.pop(journal.run_id, None)
            if started is not None:
                done.append(_from_journal(session, journal, meta))
            journal.remove()
        finally:
            lock.release()
    if include_unjournaled:
        for run_id, started in open_runs.items():
            if run_id not in live:
                done.append(_without_journal(session, started))
    return done


def _wait_for_terraform(session: Session, meta: Mapping[str, Any]) -> None:
    pid = meta.get("terraform_pid")
    if not isinstance(pid, int) or not _proc.process_alive(pid, str(meta.get("tf", {}).get("path") or "")):
        return
    session.console.warn(f"tfaudit: run {meta.get('run_id')}: waiting for terraform (pid {pid}) to finish "
                         "the apply its tfaudit started")
    while _proc.process_alive(pid, str(meta.get("tf", {}).get("path") or "")):
        time.sleep(0.2)


def _state_after(session: Session, meta: Mapping[str, Any]) -> State | None:
    tf_meta = meta.get("tf") or {}
    tf = Terraform(str(tf_meta.get("path")), str(tf_meta.get("tool") or "terraform"), tf_meta.get("version"),
                   tf_meta.get("chdir"), session.env)
    state_file = tf_meta.get("state_file")  # the -state-out (or -state) file its apply wrote
    return load_state(tf, Path(state_file) if isinstance(state_file, str) else None)


def _in_state(state: State | None) -> dict[str, bool]:
    """address -> tainted, for every current object in the state."""
    return {r.address: bool(r.tainted) for r in (state.resources if state else ()) if r.deposed is None}


def recovered_status(tracked: str, actions: Sequence[str], clean_finish: bool, present: dict[str, bool],
                     address: str) -> tuple[str, str | None]:
    """(status, why) of one planned change, from the journal's evidence checked against the state."""
    acts = set(actions)
    if tracked == "started":
        return "unknown", "terraform started this change; its journal does not say how it ended"
    if tracked == "failed":
        return "failed", None
    if tracked == "not_attempted":
        if acts <= {"forget", "no-op"} and clean_finish:
            return "succeeded", None
        return "not_attempted", None
    # the journal says it completed: the state must agree
    if acts & _CHANGED or acts == {"delete", "create"} or acts == {"create", "delete"}:
        if address not in present or present[address]:
            return "unknown", "the journal says it completed, but the state has no untainted object at this address"
    elif acts == {"delete"} and address in present:
        return "unknown", "the journal says it was deleted, but the state still has it"
    return "succeeded", None


def _journal_evidence(journal: Journal) -> tuple[ApplyTracker, int, str]:
    tracker = ApplyTracker()
    h = hashlib.sha256()
    n = 0
    for raw in journal.lines():
        h.update(raw)
        n += 1
        event = parse_event_line(raw)
        if event is not None:
            tracker.feed(event)
    return tracker, n, h.hexdigest()


def _from_journal(session: Session, journal: Journal, meta: Mapping[str, Any]) -> Recovered:
    _wait_for_terraform(session, meta)
    tracker, lines, digest = _journal_evidence(journal)
    state_after = _state_after(session, meta)
    present = _in_state(state_after)
    errors = [d for d in tracker.diagnostics if d.is_error]
    clean = tracker.change_summary is not None and not errors
    run, actor = meta["run"], meta.get("actor") or {}
    exit_code = (1 if errors else 0) if tracker.change_summary is not None or errors else -1
    # the planned bodies: in the journal's changes file, or (journals left by tfaudit before it) in the meta
    bodies = ([dict(change["resource"]) for change in meta.get("changes") or []] if "changes" in meta
              else list(journal.changes()))
    resolved = outcomes.resolve([_planned_change(b) for b in bodies], tracker, exit_code=max(exit_code, 0),
                                interrupted=False, state_after=state_after)
    recs: list[dict[str, Any]] = []
    counts: dict[str, int] = {"succeeded": 0, "failed": 0, "not_attempted": 0}
    for body, outcome in zip(bodies, resolved):
        body.update(_outcome_fields(session, body, outcome, tracker, clean, present))
        counts[body["status"]] = counts.get(body["status"], 0) + 1
        recs.append(records.base_record(RecordType.RESOURCE_CHANGED, run, actor, resource=body))
    status = "unknown" if counts.get("unknown") or exit_code == -1 else records.run_status(counts, exit_code, False)
    recovered = _recovered_note(session, meta, {"lines": lines, "sha256": digest, "finished": clean})
    finished = records.outcome_body(
        status=status, exit_code=exit_code, counts=counts, state_before=None, state_after=state_after,
        errors=[{"summary": session.redactor.scrub(d.summary), "detail": session.redactor.scrub(d.detail)}
                for d in tracker.errors_without_address],
        reason="tfaudit stopped before the run finished; completed from terraform's journal and the state")
    finished["state"]["before"] = meta.get("state_before")
    finished["recovered"] = recovered
    recs.append(records.base_record(RecordType.RUN_FINISHED, run, actor, outcome=finished))
    publish(session, recs, applied=True)
    return Recovered(str(meta["run_id"]), status, counts, True)


def _planned_change(body: Mapping[str, Any]) -> ResourceChange:
    """The planned change a recorded (redacted) resource body describes: enough for the outcome rules."""
    return ResourceChange(
        address=body["address"], previous_address=body.get("previous_address"), module=body.get("module"),
        mode=str(body.get("mode") or "managed"), type=str(body.get("type") or ""), name=str(body.get("name") or ""),
        index=body.get("index"), provider=str(body.get("provider") or ""), actions=tuple(body.get("actions") or ()),
        action_reason=body.get("action_reason"), before=body.get("before"), after=body.get("after"),
        after_unknown=None, before_sensitive=None, after_sensitive=None, replace_paths=(),
        importing=body.get("importing"), deposed=body.get("deposed"), generated_config=None)


def _outcome_fields(session: Session, body: Mapping[str, Any], outcome: records.Outcome, tracker: ApplyTracker,
                    clean: bool, present: dict[str, bool]) -> dict[str, Any]:
    """A recovered change's status, phases, evidence and after-values: tfaudit.run.outcomes' verdict from
    the journal and the state, except that an operation the journal shows started and never ended is
    `unknown` (terraform may have been killed too), never guessed."""
    fresh = records.resource_body(_planned_change(body), outcome, session.redactor)
    fields: dict[str, Any] = {k: fresh[k] for k in ("status", "phases", "evidence", "error", "elapsed_seconds", "after",
                                    "after_source", "planned_after") if k in fresh}
    tracked = str(tracker.outcome(body["address"]).status)
    status, why = recovered_status(tracked, body.get("actions") or [], clean, present, body["address"])
    if status == "unknown" and fields["status"] != "unknown":
        fields["status"] = "unknown"
        fields["error"] = {"summary": why or "the evidence cannot tell", "detail": ""}
    return fields


def _recovered_note(session: Session, meta: Mapping[str, Any], journal: Mapping[str, Any] | None) -> dict[str, Any]:
    return {"at": records.now(), "by": session.actor.get("user"), "tfaudit_pid": meta.get("tfaudit_pid"),
            "journal": dict(journal) if journal is not None else None}


def _without_journal(session: Session, started: Mapping[str, Any]) -> Recovered:
    run, actor = started["run"], started.get("actor") or {}
    n = len((started.get("plan") or {}).get("changes") or [])
    counts = {"succeeded": 0, "failed": 0, "not_attempted": 0, "unknown": n}
    outcome = records.outcome_body(status="unknown", exit_code=-1, counts=counts, state_before=None,
                                   state_after=None,
                                   reason="tfaudit stopped before the run finished and left no journal here")
    outcome["recovered"] = _recovered_note(session, {}, None)
    publish(session, [records.base_record(RecordType.RUN_FINISHED, run, actor, outcome=outcome)], applied=True)
    return Recovered(str(run.get("id")), "unknown", counts, False)


def recover_ledger(inv: Invocation, env: Mapping[str, str], console: Console) -> list[Recovered]:
    """`tfaudit recover`: finish every unfinished run of the ledger that can be finished now."""
    session = open_session(inv, env, console)
    return recover(session, include_unjournaled=True)
