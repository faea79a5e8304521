"""`recorded_run`: the skeleton every recorded command shares.

apply, plan, destroy, the state commands, import, taint and drift all run inside one:
it finishes runs of the same ledger whose tfaudit died (tfaudit.run.recover), makes the run
id, reads the state before, checks that state against the ledger's
last known one (a `state.out_of_band` record when it moved behind tfaudit's back),
forwards SIGINT/SIGTERM to terraform while it runs, builds the run's `RunInfo` (here and
nowhere else) and publishes the records.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tfaudit import records
from tfaudit.analysis.policy import Policy
from tfaudit.parse.state import State
from tfaudit.run import gates, publish
from tfaudit.run.journal import Journal, RunLock, journal_dir
from tfaudit.run.outofband import (
    OutOfBand,
    check_out_of_band,
    load_state,
    state_identity,
)
from tfaudit.run.recover import recover
from tfaudit.run.session import Session
from tfaudit.schema import RecordType
from tfaudit.terraform import proc as _proc
from tfaudit.terraform.localstate import StateFiles


@dataclass(frozen=True)
class Destination:
    """A second state the command changes: `state mv -state-out=PATH` moves resources into it."""

    path: Path
    state_id: str  # tfaudit.run.outofband.state_identity: what the next run on that file looks up
    before: State | None


@dataclass
class RecordedRun:
    """One recorded command while it runs: its id, its timing, its signals, its run info."""

    session: Session
    command: str
    fwd: _proc.SignalForwarder
    run_id: records.RunId = field(default_factory=lambda: records.RunId(records.new_id()))
    t0: float = field(default_factory=time.monotonic)
    state_files: StateFiles = field(default_factory=StateFiles)  # -state / -state-out, if given
    state_before: State | None = None
    destination: Destination | None = None
    _info: records.RunInfo | None = None
    _journal: Journal | None = None
    _meta: dict[str, Any] = field(default_factory=dict)

    @property
    def interrupted(self) -> bool:
        return self.fwd.received is not None

    def elapsed(self) -> float:
        return time.monotonic() - self.t0

    def info(self, *, plan_sha256: str | None = None, plan_file: str | None = None) -> records.RunInfo:
        """The run's RunInfo, made once: the first call fixes it (give the plan when there is one).
        Its state is the one the run leaves (-state-out), which the next run's check looks up."""
        if self._info is None:
            tf, inv = self.session.tf, self.session.inv
            self._info = records.RunInfo(
                id=self.run_id, command=self.command, args=tuple(self.session.redactor.argv(inv.tf_args)),
                tool=tf.tool, tool_version=tf.version, workspace=tf.workspace(), working_dir=str(tf.working_dir),
                plan_sha256=plan_sha256, plan_file=plan_file, state_id=state_identity(tf, self.state_files.written))
        return self._info

    def load_state_after(self) -> State | None:
        """The state the command left: the -state-out (or -state) file, else the backend's."""
        return load_state(self.session.tf, self.state_files.written)

    def record(self, rtype: str, **body: Any) -> dict[str, Any]:
        """A record of this run (its RunInfo must be fixed first, see `info`)."""
        return records.base_record(rtype, self.info(), self.session.actor, **body)

    def publish(self, recs: Iterable[Mapping[str, Any]], *, applied: bool = False) -> int:
        return publish.publish(self.session, recs, applied=applied)

    def append(self, recs: Sequence[Mapping[str, Any]], *, applied: bool) -> None:
        """Into the ledger only (the intent record, before terraform applies)."""
        publish.append(self.session, recs, applied=applied)

    @contextmanager
    def journaled(self, changes: Iterable[Mapping[str, Any]]) -> Iterator[Journal]:
        """Keep a journal of this apply (see tfaudit.run.journal) while the block runs.

        `changes` are the planned resource.changed bodies (redacted), for recovery, written to the
        journal one at a time as they come (never all held). The journal
        is removed when the block ends normally, or fails before terraform started; after
        that, a failure leaves it for recovery to finish the run.
        """
        session, tf = self.session, self.session.tf
        journal = Journal(journal_dir(session.local_dir), self.run_id)
        lock = RunLock(journal)
        lock.acquire(wait=True)
        self._journal = journal
        self._meta = {
            "run_id": self.run_id, "ledger": session.store.url, "tfaudit_pid": os.getpid(), "terraform_pid": None,
            "run": self.info().as_dict(), "actor": session.actor, "state_before": records.state_ref(self.state_before),
            "tf": {"path": tf.path, "tool": tf.tool, "version": tf.version, "chdir": str(tf.working_dir),
                   "state_file": str(self.state_files.written) if self.state_files.written else None},
            "changes_file": journal.changes_path.name,
        }
        try:
            journal.write_changes(changes)
            journal.write_meta(self._meta)
            yield journal
        except BaseException:
            if self._meta.get("terraform_pid") is None:
                journal.remove()  # terraform never started: nothing to recover
            raise
        else:
            journal.remove()
        finally:
            lock.release()
            self._journal = None

    def terraform_started(self, pid: int) -> None:
        """Note terraform's pid in the journal's meta, so recovery can wait for it."""
        if self._journal is not None:
            self._meta["terraform_pid"] = pid
            self._journal.write_meta(self._meta)


def _record_out_of_band(run: RecordedRun, path: Path | None, current: State | None) -> OutOfBand | None:
    """When the state (`path`: a -state file, else the backend's) moved behind tfaudit's back,
    append a state.out_of_band record now.

    Written at once, before terraform runs, so the record exists even if the command then
    fails; it carries the run id the command's own records will use.
    """
    session = run.session
    Policy.from_config(session.config)  # a waiver naming no rule fails here, before terraform runs
    oob = check_out_of_band(session.store, session.tf, current, path)
    if oob is None:
        return None
    # its info has no plan yet, and names the state observed (-state), not the one the run will leave
    provisional = RecordedRun(session, run.command, run.fwd, run.run_id, run.t0, StateFiles(path, path))
    findings = gates.finding_dicts(gates.out_of_band_findings(oob, session.config), session.redactor.scrub)
    rec = provisional.record(RecordType.STATE_OUT_OF_BAND, detail=oob.detail(), findings=findings)
    session.store.append([rec], session.signer)
    session.console.warn(f"tfaudit: warning: {oob.message()} (recorded as state.out_of_band)")
    return oob


def recover_unfinished(session: Session) -> None:
    """Finish runs of this ledger whose tfaudit died (tfaudit.run.recover), before anything else."""
    for done in recover(session):
        session.console.warn(f"tfaudit: finished an interrupted run: {done.describe()}")


@contextmanager
def recorded_run(session: Session, command: str) -> Iterator[RecordedRun]:
    """Open a recorded run: unfinished runs recovered, state before, the out-of-band check,
    signals forwarded to terraform."""
    recover_unfinished(session)
    with _proc.forwarding_signals() as fwd:
        run = RecordedRun(session, command, fwd, state_files=StateFiles.of(session.tf, command, session.inv.tf_args))
        run.state_before = load_state(session.tf, run.state_files.read)
        _record_out_of_band(run, run.state_files.read, run.state_before)
        run.destination = _destination(run)
        if run.destination is not None:
            _record_out_of_band(run, run.destination.path, run.destination.before)
        yield run


def _destination(run: RecordedRun) -> Destination | None:
    """The second state `state mv -state-out` writes, with its state before; None when there is
    none or it is the source state itself (the run's own records cover that one)."""
    path, tf = run.state_files.moved_to, run.session.tf
    if path is None:
        return None
    state_id = state_identity(tf, path)
    if state_id is None or state_id == state_identity(tf, run.state_files.read):
        return None
    return Destination(path, state_id, load_state(tf, path))
