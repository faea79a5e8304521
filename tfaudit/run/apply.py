"""apply and destroy, recorded: the spine of tfaudit.

Plan to a temporary file (or take the user's saved plan), show the plan, run the gates,
ask for approval like terraform, write the `run.started` intent record, apply with
`-json` while rendering readable progress, then write one `resource.changed` record per
planned change and a `run.finished` record. Nothing is applied unless the intent record
is durably in the ledger.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tfaudit import records
from tfaudit.errors import ExitCode, PolicyError, UsageError
from tfaudit.parse.events import ApplyTracker, Diagnostic, parse_event_line
from tfaudit.parse.plan import Plan, ResourceChange, parse_plan, plan_checks
from tfaudit.parse.state import State
from tfaudit.redact import LineScrubber
from tfaudit.run import changes as changes_mod
from tfaudit.run import gates, outcomes
from tfaudit.run.journal import journal_dir
from tfaudit.run.noop import apply_events, unchanged_plan
from tfaudit.run.recorded import RecordedRun, recorded_run
from tfaudit.run.session import Invocation, Session, open_session
from tfaudit.schema import RecordType
from tfaudit.terraform.args import SplitArgs, split_args
from tfaudit.terraform.binary import Terraform, sha256_file
from tfaudit.ui.console import Console
from tfaudit.ui.saved_plan import SavedPlanNote, shown_diagnostic
from tfaudit.ui.stream import StreamRenderer, redact_json_line


# diagnostics terraform apply shows once although tfaudit's plan and apply steps both give them
# (besides the check blocks' results, Diagnostic.checked_again, and what comes before either operation)
_PLAN_WARNINGS = frozenset({"Value for undeclared variable", "Values for undeclared variables"})  # the plan's


def load_plan(tf: Terraform, plan_path: str) -> Plan:
    data = tf.show_json(plan_path)
    return parse_plan(data, source=f"terraform show -json {plan_path}")


@dataclass(frozen=True)
class PlanStep:
    """The plan this apply carries out: tfaudit's temporary one, or the user's saved plan file."""

    path: str  # as given to terraform
    abs_path: Path
    saved: str | None  # the user's plan file argument, when there is one
    held: list[str] = field(default_factory=list)  # the plan's warnings, shown with the apply's (no prompt between)
    diagnosed: bool = True  # the planning step showed a warning or an error (True: not known)
    shown: frozenset[str] = frozenset()  # the summaries of the planning step's diagnostics


def run_apply(inv: Invocation, env: Mapping[str, str], console: Console | None = None) -> int:
    console = console or Console()
    session = open_session(inv, env, console)
    split = split_args(inv.tf_args)
    if len(split.positional) > 1:
        raise UsageError(f"too many arguments: {' '.join(split.positional)}",
                         hint="give at most one saved plan file")
    saved = split.positional[0] if split.positional else None
    if saved and inv.command == "destroy":
        raise UsageError("tfaudit destroy does not take a plan file", hint="use 'tfaudit apply PLANFILE'")
    with tempfile.TemporaryDirectory(prefix="tfaudit-") as tmp, recorded_run(session, inv.command) as run:
        step = _plan_step(run, split, saved, Path(tmp))
        if isinstance(step, int):
            return step
        return _apply_planned(run, split, step)


def _plan_step(run: RecordedRun, split: SplitArgs, saved: str | None, tmp: Path) -> PlanStep | int:
    """The plan to apply; an exit code when planning failed or was interrupted (recorded)."""
    tf = run.session.tf
    if saved:
        abs_path = Path(saved) if Path(saved).is_absolute() else tf.working_dir / saved
        if not abs_path.is_file():
            raise UsageError(f"plan file {saved} does not exist", hint="check the path (relative to -chdir if given)")
        return PlanStep(saved, abs_path, saved)
    plan_path = str(tmp / "tfaudit.tfplan")
    plan_args = (["-destroy"] if run.command == "destroy" else []) + split.plan
    held: list[str] = []
    rc, shown = _terraform_plan(run, [f"-out={plan_path}", *plan_args], split, held)
    if run.interrupted or rc != 0:
        return _record_unapplied(run, rc, reason="interrupted during plan" if run.interrupted
                                 else "terraform plan failed")
    return PlanStep(plan_path, Path(plan_path), None, held, bool(shown), shown)


def _terraform_plan(run: RecordedRun, args: list[str], split: SplitArgs,
                    held: list[str]) -> tuple[int, frozenset[str]]:
    """`terraform plan ARGS` for apply/destroy: its screen as `terraform apply` shows it (without the
    hint to apply tfaudit's temporary plan file; with no prompt to come, the plan's warnings are kept
    back in `held`, shown with the apply's as terraform does), or with -json its event stream.
    Returns the exit code and the summaries of the warnings and errors it gave."""
    tf, console = run.session.tf, run.session.console
    if not split.json:
        note = SavedPlanNote(tf.tool, replace_with_note=False, hold_diagnostics=split.auto_approve)
        rc = tf.run(["plan", *args], forwarder=run.fwd, saved_plan_note=note)
        text = [(shown_diagnostic(d), d.decode("utf-8", "replace")) for d in note.held_diagnostics()]
        _hold_plan_diagnostics(run, rc, text, held)
        return rc, frozenset(note.summaries)
    shown: set[str] = set()
    begun = False  # the operation has begun: what terraform says before it (a deprecated flag) stays in place
    diags: list[tuple[Diagnostic, str]] = []  # with no prompt to come: held

    def passthrough(raw: bytes) -> None:
        nonlocal begun
        event = parse_event_line(raw)
        if event and event.diagnostic:
            shown.add(event.diagnostic.summary)
            if split.auto_approve and begun:
                diags.append((event.diagnostic, raw.decode("utf-8", "replace")))
                return
        elif event and event.type != "version":
            begun = True
        console.out.write(raw.decode("utf-8", "replace"))
        console.out.flush()

    rc = tf.stream(["plan", "-json", *args], passthrough, forwarder=run.fwd)
    _hold_plan_diagnostics(run, rc, diags, held)
    return rc, frozenset(shown)


def _hold_plan_diagnostics(run: RecordedRun, rc: int, diags: list[tuple[Diagnostic, str]], held: list[str]) -> None:
    """The plan's diagnostics (as parsed, as shown), kept back to show with the apply's, as terraform
    apply -auto-approve does: without the check blocks' results, which the apply gives again. With no
    apply to come (the plan failed) all of them, now."""
    console = run.session.console
    if rc != 0 and diags:
        console.out.write("".join(text for _, text in diags))
        console.out.flush()
    elif kept := [text for diag, text in diags if not diag.checked_again]:
        held.append("".join(kept))


def _apply_planned(run: RecordedRun, split: SplitArgs, step: PlanStep) -> int:
    session = run.session
    if run.state_before is not None:  # from here on only its digests are recorded: its values may go
        run.state_before = run.state_before.without_values()
    # nothing to apply, read from the plan file itself: no `terraform show -json` (tfaudit.run.noop)
    unchanged = None if step.saved or run.command != "apply" else unchanged_plan(
        session.tf, step.abs_path, split, diagnosed=step.diagnosed)
    if unchanged is not None:
        read = changes_mod.PlanRead(unchanged, ())
    else:
        spool_dir = journal_dir(session.local_dir)
        spool_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        read = changes_mod.read_plan(session.tf.show_json(step.path), f"terraform show -json {step.path}",
                                     session.redactor, spool_dir)
    try:
        return _apply_read(run, split, step, read)
    finally:
        read.close()


def _apply_read(run: RecordedRun, split: SplitArgs, step: PlanStep, read: changes_mod.PlanRead) -> int:
    session, plan, changes = run.session, read.plan, read.changes
    plan_sha = sha256_file(step.abs_path)
    run.info(plan_sha256=plan_sha, plan_file=str(step.saved) if step.saved else None)
    gate = gates.decide(session, plan, plan_sha, (step.saved, step.abs_path) if step.saved else None)
    plan_body = records.plan_body(plan, plan_sha, session.redactor, changes)
    if gate.refusal is not None:
        _record_blocked(run, plan_body, gate.findings, gate.refusal, gate.reason or gate.refusal.message)
    has_changes = bool(changes) or any(o.actions != ("no-op",) for o in plan.output_changes)
    if not step.saved and has_changes and not split.auto_approve:
        approved = session.console.confirm(destroy=run.command == "destroy", color=not split.no_color)
        if not approved:
            if approved is False:  # None: stdin ended first, which terraform reports as an error (shown)
                session.console.say(("Destroy" if run.command == "destroy" else "Apply") + " cancelled.")
            return _record_declined(run, plan_body, gate.findings)
    started = run.record(RecordType.RUN_STARTED, plan=plan_body)
    if gate.findings:
        started["findings"] = gate.findings
    if step.saved:
        started["plan"]["recorded_by"] = gate.bound_to
    # nothing to apply (not even the state): terraform's events for it, without starting terraform again
    noop = None if step.saved or run.command != "apply" else apply_events(
        session.tf, plan, step.abs_path, split, diagnosed=step.diagnosed)
    with run.journaled(changes_mod.planned_bodies(changes, session.redactor, gate.analysis)) as journal:
        run.append([started], applied=False)
        del started, plan_body
        tracker = ApplyTracker()
        rc = _stream_apply(run, split, step, tracker, journal.stream, noop)
        return _finish(run, plan, changes, tracker, rc, gate.analysis)


def _stream_apply(run: RecordedRun, split: SplitArgs, step: PlanStep, tracker: ApplyTracker, journal: Path,
                  noop: list[bytes] | None = None) -> int:
    """terraform apply -json into the journal, which is followed: events tracked, rendered as terraform
    would print them (or passed on with -json). terraform carries on if tfaudit dies. `noop`: the
    events of an apply that changes nothing (tfaudit.run.noop), shown instead of starting terraform."""
    console = run.session.console
    lines = LineScrubber(run.session.redactor)  # a private key printed over many lines is hidden whole
    renderer = StreamRenderer(console.out, console.err, run.session.redactor.scrub,
                              destroy=run.command == "destroy", color=not split.no_color, lines=lines)
    held = step.held
    begun = False  # the apply has begun: before it, terraform repeats what it said before the plan

    def on_line(raw: bytes) -> None:
        nonlocal begun
        event = parse_event_line(raw)
        if event is None:
            return
        tracker.feed(event)
        if split.json and event.type in ("version", "planned_change") and not step.saved:
            return  # the plan step's stream had them already: `terraform apply -json` prints them once
        if event.diagnostic and not step.saved and (event.diagnostic.summary in _PLAN_WARNINGS or (
                not begun and event.diagnostic.summary in step.shown)):
            return  # the plan step warned already; applying its plan file repeats it, `terraform apply` doesn't
        begun = begun or (event.type != "version" and not event.diagnostic)
        if held and split.auto_approve and event.type in ("diagnostic", "change_summary"):
            console.out.write(held.pop())
        if split.json:
            console.out.write(redact_json_line(raw, lines))
            console.out.flush()
        else:
            renderer.render(event.raw if event.type != "text" else event.message, raw)

    # With a saved plan there is no plan step: planning options go to apply, so terraform's own
    # error ("Can't set variables when applying a saved plan") reaches the user unchanged.
    apply_args = [*split.plan, *split.apply] if step.saved else split.apply
    if noop is not None:
        for line in noop:
            on_line(line)
        rc = 0
    else:
        rc = run.session.tf.stream_journaled(["apply", "-json", *apply_args, step.path], journal, on_line,
                                             forwarder=run.fwd, on_start=run.terraform_started)
    if held and split.auto_approve:
        console.out.write(held.pop())
        console.out.flush()
    return rc


def resource_outcomes(tracker: ApplyTracker, changes: Sequence[ResourceChange], rc: int, interrupted: bool,
                      state_after: State | None) -> list[records.Outcome]:
    """Each planned change's outcome: its phases from the event stream, checked against the state
    after (tfaudit.run.outcomes)."""
    return outcomes.resolve(changes, tracker, exit_code=rc, interrupted=interrupted, state_after=state_after)


def _finish(run: RecordedRun, plan: Plan, changes: Sequence[ResourceChange], tracker: ApplyTracker, rc: int,
            analysis: gates.RunAnalysis) -> int:
    """The closing records: one resource.changed per planned change, then run.finished; made one at
    a time as the ledger takes them (tfaudit.run.changes)."""
    session = run.session
    interrupted = run.interrupted
    state_after = run.load_state_after()
    counts = outcomes.counts(())

    def closing() -> Iterator[dict[str, Any]]:
        yield from changes_mod.changed_records(run.record, changes, tracker, rc, interrupted, state_after,
                                               session.redactor, analysis, counts)
        errors = [{"summary": session.redactor.scrub(d.summary), "detail": session.redactor.scrub(d.detail)}
                  for d in tracker.errors_without_address]
        yield run.record(RecordType.RUN_FINISHED, outcome=records.outcome_body(
            status=records.run_status(counts, rc, interrupted), exit_code=rc,
            counts={k: v for k, v in counts.items() if v or k != "interrupted"},
            state_before=run.state_before, state_after=state_after, errors=errors,
            reason="interrupted by signal" if interrupted else None, duration_seconds=run.elapsed(),
            failed_checks=[records.check_body(c, session.redactor) for c in
                           outcomes.failed_checks(plan_checks(plan), state_after, tracker)]))

    override = run.publish(closing(), applied=True)
    session.console.summary(
        f"run {run.run_id[:8]} ({len(changes) + 2} records: {', '.join(f'{n} {k}' for k, n in counts.items() if n)})"
        if changes else f"run {run.run_id[:8]} (no changes)", session.store.local_path or session.store.url)
    if interrupted:
        return int(ExitCode.INTERRUPTED)
    return override or rc


def _record_blocked(run: RecordedRun, plan_body: dict[str, Any], findings: list[dict[str, Any]],
                    refusal: PolicyError, reason: str) -> None:
    """A gate stopped the apply: record run.started + run.finished `blocked` (refused attempts
    belong in the trail too), then raise the refusal (exit 5)."""
    session = run.session
    run.publish([
        run.record(RecordType.RUN_STARTED, plan=plan_body, findings=findings),
        run.record(RecordType.RUN_FINISHED, outcome=records.outcome_body(
            status="blocked", exit_code=int(ExitCode.POLICY), counts={}, state_before=run.state_before,
            state_after=run.state_before, reason=session.redactor.scrub(reason)[:500],
            duration_seconds=run.elapsed())),
    ])
    raise refusal


def _record_declined(run: RecordedRun, plan_body: dict[str, Any], findings: list[dict[str, Any]]) -> int:
    """The user answered something other than "yes": who declined which plan, and when, is recorded."""
    started = run.record(RecordType.RUN_STARTED, plan=plan_body)
    if findings:
        started["findings"] = findings
    run.publish([started, run.record(RecordType.RUN_FINISHED, outcome=records.outcome_body(
        status="declined", exit_code=int(ExitCode.FAILURE), counts={}, state_before=run.state_before,
        state_after=run.state_before, reason="approval declined at the prompt", duration_seconds=run.elapsed()))])
    return int(ExitCode.FAILURE)


def _record_unapplied(run: RecordedRun, rc: int, *, reason: str) -> int:
    """A plan that failed or was interrupted: nothing was applied; say so in the ledger."""
    empty: dict[str, Any] = {"sha256": None, "summary": {}, "changes": [], "resource_drift": [], "errored": True}
    run.publish([
        run.record(RecordType.RUN_STARTED, plan=empty),
        run.record(RecordType.RUN_FINISHED, outcome=records.outcome_body(
            status="interrupted" if run.interrupted else "failed", exit_code=rc, counts={},
            state_before=run.state_before, state_after=run.state_before, reason=reason,
            duration_seconds=run.elapsed())),
    ])
    return int(ExitCode.INTERRUPTED) if run.interrupted else (rc or int(ExitCode.FAILURE))


__all__ = ["Console", "Invocation", "Session", "load_plan", "resource_outcomes", "run_apply"]
