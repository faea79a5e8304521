"""Run a wrapped terraform command and record it: the spine of tfaudit.

apply/destroy: plan to a temporary file (or take the user's saved plan), show the plan,
ask for approval like terraform, write the `run.started` intent record, apply with
`-json` while rendering readable progress, then write one `resource.changed` record per
planned change and a `run.finished` record. Nothing is applied unless the intent record
is durably in the ledger.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from tfaudit.logs import get_logger

from tfaudit import records
from tfaudit.terraform import proc as _proc
from tfaudit.config import Config, load_config
from tfaudit.errors import ExitCode, LedgerError, PlanError, PolicyError, UsageError
from tfaudit.identity.actor import IdentityOptions, collect_actor
from tfaudit.trail.store import Appended, LedgerStore, open_store
from tfaudit.parse.events import ApplyTracker, parse_event_line
from tfaudit.parse.plan import Plan, parse_plan, plan_checks
from tfaudit.parse.state import State, parse_state
from tfaudit.redact import LineScrubber, Redactor
from tfaudit.ui.console import Console
from tfaudit.ui.stream import StreamRenderer, redact_json_line
from tfaudit.trail.signing import Signer, default_key_path, generate_keypair, load_signer
from tfaudit.terraform.args import plan_out, split_args
from tfaudit.terraform.binary import SavedPlanNote, Terraform, detect, sha256_file

log = get_logger("tfaudit")

DEFAULT_LEDGER = Path(".tfaudit") / "ledger.jsonl"


@dataclass(frozen=True)
class Invocation:
    """What the user asked for: the command, terraform's arguments, and tfaudit's own options."""

    command: str
    tf_args: tuple[str, ...] = ()
    chdir: str | None = None
    ledger: str | None = None
    signing_key: str | None = None
    config: str | None = None
    tf_path: str | None = None
    checkpoints: str | None = None  # --checkpoints DIR|s3://...|https://...
    fail_on: str | None = None  # --fail-on / TFAUDIT_FAIL_ON severity gate


@dataclass
class Session:
    """Everything resolved before terraform changes anything."""

    inv: Invocation
    env: Mapping[str, str]
    config: Config
    ledger: LedgerStore
    signer: Signer
    tf: Terraform
    actor: dict[str, Any]
    redactor: Redactor
    console: Console


# --- resolving config, ledger, key -------------------------------------------------------------
def resolve_ledger_path(inv: Invocation, cfg: Config, env: Mapping[str, str], work_dir: Path) -> Path:
    explicit = inv.ledger or env.get("TFAUDIT_LEDGER")
    if explicit:
        return Path(explicit).expanduser().resolve()
    if cfg.ledger.path is not None:
        return cfg.ledger.path.resolve()
    return (work_dir / DEFAULT_LEDGER).resolve()


def resolve_signer(inv: Invocation, cfg: Config, env: Mapping[str, str], console: Console) -> Signer:
    explicit = inv.signing_key or env.get("TFAUDIT_SIGNING_KEY")
    if explicit:
        return load_signer(Path(explicit).expanduser())
    if cfg.signing.signer == "kms":
        from tfaudit.trail.kms import KmsSigner  # boto3 only when a KMS signer is configured

        kms_signer: Signer = KmsSigner.from_config(cfg.signing.options, env)
        return kms_signer
    if cfg.signing.key is not None:
        return load_signer(cfg.signing.key)
    path = default_key_path(env)
    if not path.exists():
        generate_keypair(path)
        console.warn(f"tfaudit: created a signing key at {path} (public key: {path}.pub); "
                     f"verify ledgers with 'tfaudit verify LEDGER --public-key {path}.pub'")
    return load_signer(path)


def open_session(inv: Invocation, env: Mapping[str, str], console: Console) -> Session:
    from tfaudit.terraform.binary import find_binary

    work_dir = Path(inv.chdir).resolve() if inv.chdir else Path.cwd()
    cfg = load_config(inv.config or env.get("TFAUDIT_CONFIG"), work_dir)
    find_binary(inv.tf_path, env)  # fail on a missing terraform before touching anything
    explicit = inv.ledger or env.get("TFAUDIT_LEDGER")
    shared = explicit if explicit and "://" in explicit and not explicit.startswith("file://") else None
    shared = shared or (None if explicit else cfg.ledger.url)
    ledger = open_store(shared or resolve_ledger_path(inv, cfg, env, work_dir), env)
    ledger.check_writable()
    signer = resolve_signer(inv, cfg, env, console)
    tf = detect(inv.tf_path, env, inv.chdir)
    ident = cfg.identity
    actor = collect_actor(cwd=work_dir, env=env, options=IdentityOptions(
        user=ident.user, git=ident.git, ci=ident.ci, hostname=ident.hostname))
    redactor = Redactor.with_additions(cfg.redact.names, cfg.redact.values)
    if ident.aws:  # STS caller identity; boto3 is imported only when AWS credentials are present
        from tfaudit.identity.cloud import cloud_identity

        actor["cloud"] = cloud_identity(env)
    if cfg.section("sink"):  # owe the sinks every record this run writes, before it writes one
        from tfaudit.sinks.delivery import prepare

        prepare(_outbox_base(ledger), cfg.section("sink"), cfg.section("delivery"), console.warn)
    # GitHub Actions OIDC identity claims into actor.ci.oidc (never the token itself)
    if ident.ci and env.get("ACTIONS_ID_TOKEN_REQUEST_URL"):
        from tfaudit.identity import oidc

        oidc.attach(actor, env, cfg.section("oidc"), redactor)
    return Session(inv, env, cfg, ledger, signer, tf, actor, redactor, console)


def _load_state(tf: Terraform) -> State | None:
    data = tf.state_pull()
    if data is None:
        return None
    try:
        return parse_state(data, source="terraform state pull")
    except Exception as e:  # noqa: BLE001 - an unreadable state must not stop the audited run
        log.warning("state.unreadable", error=str(e)[:200])
        return None


def _load_plan(tf: Terraform, plan_path: str) -> Plan:
    data = tf.show_json(plan_path)
    return parse_plan(data, source=f"terraform show -json {plan_path}")


def _append(session: Session, recs: list[dict[str, Any]], *, applied: bool) -> list[Appended]:
    try:
        return session.ledger.append(recs, session.signer)
    except LedgerError as e:
        if applied:
            e.hint = "terraform DID apply its changes; the ledger now lacks this run's records"
        raise


def publish(session: Session, recs: list[dict[str, Any]], *, applied: bool = False) -> int:
    """Append records durably, then deliver them to the sinks and anchor a checkpoint.

    Returns an exit-code override (0 = none): 4 when delivery or anchoring failed and the
    config says `on_failure = "fail"`. The ledger write itself raises on failure.
    """
    if not recs:
        return 0
    _append(session, recs, applied=applied)
    override = _deliver(session)
    return _anchor(session) or override


def _deliver(session: Session) -> int:
    """Send what the sinks are owed (this run's records and any backlog; see tfaudit.sinks);
    boto3 and the like are imported only when a sink needs them."""
    specs = session.config.section("sink")
    if not specs:
        return 0
    from tfaudit.sinks.delivery import deliver_after_run

    return deliver_after_run(_outbox_base(session.ledger), specs, session.config.section("delivery"), session.env,
                             session.redactor, session.console.warn)


def _outbox_base(ledger: LedgerStore) -> Path | LedgerStore:
    """Where delivery keeps its outbox: beside a file ledger; a shared store keeps its own."""
    return ledger.local_path or ledger


def _anchor(session: Session) -> int:
    """Sign a checkpoint of the ledger and store it apart from it, when configured
    (--checkpoints, TFAUDIT_CHECKPOINTS or a checkpoints block; see tfaudit.trail.checkpoints)."""
    from tfaudit.trail.checkpoints import anchor_after_run

    return anchor_after_run(session.ledger, session.signer, session.inv.checkpoints, session.env,
                            session.config, lambda m: session.console.warn(session.redactor.scrub(m)))


# --- apply / destroy ----------------------------------------------------------------------
def run_apply(inv: Invocation, env: Mapping[str, str], console: Console | None = None) -> int:
    console = console or Console()
    session = open_session(inv, env, console)
    tf = session.tf
    split = split_args(inv.tf_args)
    if len(split.positional) > 1:
        raise UsageError(f"too many arguments: {' '.join(split.positional)}",
                         hint="give at most one saved plan file")
    saved_plan = split.positional[0] if split.positional else None
    if saved_plan and inv.command == "destroy":
        raise UsageError("tfaudit destroy does not take a plan file", hint="use 'tfaudit apply PLANFILE'")
    t0 = time.monotonic()
    state_before = _load_state(tf)
    run_id = records.new_id()
    from tfaudit.run.state import record_out_of_band  # state changed outside the audited path?

    record_out_of_band(session, state_before, run_id, inv.command)

    held: list[str] = []  # the plan's warnings, shown with the apply's when no prompt comes between
    with tempfile.TemporaryDirectory(prefix="tfaudit-") as tmp, _proc.forwarding_signals() as fwd:
        if saved_plan:
            plan_path = saved_plan
            plan_file_abs = Path(saved_plan) if Path(saved_plan).is_absolute() else tf.working_dir / saved_plan
            if not plan_file_abs.is_file():
                raise UsageError(f"plan file {saved_plan} does not exist", hint="check the path (relative to -chdir if given)")
        else:
            plan_path = str(Path(tmp) / "tfaudit.tfplan")
            plan_file_abs = Path(plan_path)
            plan_args = (["-destroy"] if inv.command == "destroy" else []) + split.plan
            rc = _plan_step(tf, [f"-out={plan_path}", *plan_args], split.json, console, fwd, held,
                            split.auto_approve)
            if fwd.received or rc != 0:
                return _record_unapplied(session, rc, state_before, t0, interrupted=bool(fwd.received),
                                         reason="interrupted during plan" if fwd.received else "terraform plan failed",
                                         run_id=run_id)

        plan = _load_plan(tf, plan_path)
        plan_sha = sha256_file(plan_file_abs)
        records.learn_plan_secrets(plan, session.redactor)
        run = records.RunInfo(
            id=records.RunId(run_id), command=inv.command,
            args=tuple(session.redactor.argv(inv.tf_args)), tool=tf.tool, tool_version=tf.version,
            workspace=tf.workspace(), working_dir=str(tf.working_dir), plan_sha256=plan_sha,
            plan_file=str(saved_plan) if saved_plan else None,
        )
        changes = [ch for ch in plan.resource_changes if records.is_recorded_change(ch)]
        # Gates, before approval and before terraform applies anything: risk rules (deny,
        # --fail-on), plan binding (require_recorded_plan) and the CI identity cross-check.
        from tfaudit.run.risk import analyse_run

        analysis = analyse_run(session, plan)
        gate = _check_binding_and_identity(session, plan_sha, (saved_plan, plan_file_abs) if saved_plan else None)
        findings = [*analysis.findings, *gate.findings]
        if analysis.blocked:
            _record_blocked(session, run, plan, plan_sha, state_before, t0, findings, PolicyError(
                f"blocked by policy: {session.redactor.scrub(analysis.reason)[:500]}",
                hint="nothing was applied; fix the plan, or change the rule, severity gate or waiver in .tfaudit.hcl"),
                analysis.reason)
        if gate.refusal is not None:
            _record_blocked(session, run, plan, plan_sha, state_before, t0, findings, gate.refusal,
                            gate.refusal.message)
        has_changes = bool(changes) or any(o.actions != ("no-op",) for o in plan.output_changes)
        if not saved_plan and has_changes and not split.auto_approve:
            if not console.confirm(destroy=inv.command == "destroy", color=not split.no_color):
                console.say(("Destroy" if inv.command == "destroy" else "Apply") + " cancelled.")
                return int(ExitCode.FAILURE)

        started = records.base_record("run.started", run, session.actor,
                                      plan=records.plan_body(plan, plan_sha, session.redactor))
        if findings:
            started["findings"] = findings
        if saved_plan:
            started["plan"]["recorded_by"] = gate.bound_to
        _append(session, [started], applied=False)

        tracker = ApplyTracker()
        lines = LineScrubber(session.redactor)  # a private key printed over many lines is hidden whole
        renderer = StreamRenderer(console.out, console.err, session.redactor.scrub,
                                  destroy=inv.command == "destroy", color=not split.no_color, lines=lines)

        def on_line(raw: bytes) -> None:
            event = parse_event_line(raw)
            if event is None:
                return
            tracker.feed(event)
            if split.json and event.type in ("version", "planned_change") and not saved_plan:
                return  # the plan step's stream had them already: `terraform apply -json` prints them once
            if held and split.auto_approve and event.type in ("diagnostic", "change_summary"):
                console.out.write(held.pop())
            if split.json:
                console.out.write(redact_json_line(raw, lines))
                console.out.flush()
            else:
                renderer.render(event.raw if event.type != "text" else event.message)

        # With a saved plan there is no plan step: planning options go to apply, so terraform's own
        # error ("Can't set variables when applying a saved plan") reaches the user unchanged.
        apply_args = [*split.plan, *split.apply] if saved_plan else split.apply
        rc = tf.stream(["apply", "-json", *apply_args, plan_path], on_line, forwarder=fwd)
        interrupted = fwd.received is not None
        if held and split.auto_approve:
            console.out.write(held.pop())
            console.out.flush()

    state_after = _load_state(tf)
    from tfaudit.run import outcomes as _outcomes

    results = _outcomes.resolve(changes, tracker, exit_code=rc, interrupted=interrupted, state_after=state_after)
    recs: list[dict[str, Any]] = [
        records.base_record("resource.changed", run, session.actor,
                            resource={**records.resource_body(ch, outcome, session.redactor),
                                      **analysis.resource_findings(ch.address)})
        for ch, outcome in zip(changes, results)]
    counts = _outcomes.counts(results)
    status = records.run_status(counts, rc, interrupted)
    errors = [{"summary": session.redactor.scrub(d.summary), "detail": session.redactor.scrub(d.detail)}
              for d in tracker.errors_without_address]
    recs.append(records.base_record("run.finished", run, session.actor, outcome=records.outcome_body(
        status=status, exit_code=rc, counts={k: v for k, v in counts.items() if v or k != "interrupted"},
        state_before=state_before, state_after=state_after, errors=errors,
        reason="interrupted by signal" if interrupted else None, duration_seconds=time.monotonic() - t0,
        failed_checks=[records.check_body(c, session.redactor) for c in
                       _outcomes.failed_checks(plan_checks(plan), state_after, tracker)])))
    override = publish(session, recs, applied=True)
    console.summary(f"run {run_id[:8]} ({len(recs) + 1} records: {', '.join(f'{n} {k}' for k, n in counts.items() if n)})"
                    if changes else f"run {run_id[:8]} (no changes)", session.ledger.local_path or session.ledger.url)
    if interrupted:
        return int(ExitCode.INTERRUPTED)
    return override or rc


def _plan_step(tf: Terraform, args: list[str], json_stream: bool, console: Console,
               fwd: _proc.SignalForwarder, held: list[str], hold: bool) -> int:
    """`terraform plan ARGS` for apply/destroy: its screen as `terraform apply` shows it (without the
    hint to apply tfaudit's temporary plan file; with no prompt to come, the plan's warnings are kept
    back in `held`, shown with the apply's as terraform does), or with -json its event stream."""
    if not json_stream:
        note = SavedPlanNote(tf.tool, replace_with_note=False, hold_diagnostics=hold)
        rc = tf.run(["plan", *args], forwarder=fwd, saved_plan_note=note)
        if note.diagnostics:
            held.append(b"".join(note.diagnostics).decode("utf-8", "replace"))
        return rc

    def passthrough(raw: bytes) -> None:
        console.out.write(raw.decode("utf-8", "replace"))
        console.out.flush()

    return tf.stream(["plan", "-json", *args], passthrough, forwarder=fwd)


# --- plan binding and CI identity cross-check -------------------------------------------------
@dataclass(frozen=True)
class Gate:
    bound_to: dict[str, Any] | None  # the plan.recorded record a saved plan file links to
    findings: list[dict[str, Any]]
    refusal: PolicyError | None


def _check_binding_and_identity(session: Session, plan_sha: str, saved_plan: tuple[str, Path] | None) -> Gate:
    """Link a saved plan to its plan.recorded record (refused when required and missing), and
    check who applies where against the config's `expect` block."""
    from tfaudit.run import binding
    from tfaudit.identity import expect as identity_check

    bound_to: dict[str, Any] | None = None
    refusal: PolicyError | None = None
    findings: list[dict[str, Any]] = []
    if saved_plan is not None:
        given, path = saved_plan
        found = binding.lookup(session.ledger, plan_sha, path, session.signer,
                               binding.accepted_verifiers(session.config.section("plan_keys", ())))
        bound_to = found.link()
        if bound_to is None and session.config.section("require_recorded_plan", False):
            refusal = binding.refusal(found, given, plan_sha)
            findings.append(binding.finding(refusal))
    expect = session.config.section("expect")
    identity_findings = identity_check.check(session.actor, expect)
    for f in identity_findings:
        session.console.warn(f"tfaudit: {f['severity']}: {f['rule']}: {f['message']}")
    findings += identity_findings
    if refusal is None and identity_check.blocking(identity_findings, expect):
        refusal = PolicyError(f"blocked: {identity_findings[0]['message']}",
                              hint="expect.on_mismatch = \"deny\" refuses this apply; run it from the expected CI")
    return Gate(bound_to, findings, refusal)


def _record_blocked(session: Session, run: records.RunInfo, plan: Plan, plan_sha: str, state_before: State | None,
                    t0: float, findings: list[dict[str, Any]], refusal: PolicyError, reason: str) -> None:
    """A gate stopped the apply: record run.started + run.finished `blocked` (refused attempts
    belong in the trail too), then raise the refusal (exit 5)."""
    publish(session, [
        records.base_record("run.started", run, session.actor, plan=records.plan_body(plan, plan_sha, session.redactor),
                            findings=findings),
        records.base_record("run.finished", run, session.actor, outcome=records.outcome_body(
            status="blocked", exit_code=int(ExitCode.POLICY), counts={}, state_before=state_before,
            state_after=state_before, reason=session.redactor.scrub(reason)[:500],
            duration_seconds=time.monotonic() - t0)),
    ])
    raise refusal


def _record_unapplied(session: Session, rc: int, state_before: State | None, t0: float, *,
                      interrupted: bool, reason: str, run_id: str | None = None) -> int:
    """A plan that failed or was interrupted: nothing was applied; say so in the ledger."""
    tf = session.tf
    run = records.RunInfo(
        id=records.RunId(run_id or records.new_id()), command=session.inv.command,
        args=tuple(session.redactor.argv(session.inv.tf_args)), tool=tf.tool, tool_version=tf.version,
        workspace=tf.workspace(), working_dir=str(tf.working_dir))
    empty: dict[str, Any] = {"sha256": None, "summary": {}, "changes": [], "resource_drift": [], "errored": True}
    recs = [
        records.base_record("run.started", run, session.actor, plan=empty),
        records.base_record("run.finished", run, session.actor, outcome=records.outcome_body(
            status="interrupted" if interrupted else "failed", exit_code=rc, counts={},
            state_before=state_before, state_after=state_before, reason=reason,
            duration_seconds=time.monotonic() - t0)),
    ]
    publish(session, recs)
    return int(ExitCode.INTERRUPTED) if interrupted else (rc or int(ExitCode.FAILURE))


# --- plan ------------------------------------------------------------------------------------
def run_plan(inv: Invocation, env: Mapping[str, str], console: Console | None = None) -> int:
    """`terraform plan` as usual, then a `plan.recorded` record of what it plans."""
    console = console or Console()
    session = open_session(inv, env, console)
    tf = session.tf
    args = list(inv.tf_args)
    out_arg = plan_out(args)
    run_id = records.new_id()
    from tfaudit.run.state import load_state, record_out_of_band  # state changed outside the audited path?

    record_out_of_band(session, load_state(tf), run_id, "plan")
    with tempfile.TemporaryDirectory(prefix="tfaudit-") as tmp, _proc.forwarding_signals() as fwd:
        if out_arg:
            plan_path = out_arg
            plan_abs = Path(plan_path) if Path(plan_path).is_absolute() else tf.working_dir / plan_path
            rc = tf.run(["plan", *args], forwarder=fwd)
        else:
            plan_path = str(Path(tmp) / "tfaudit.tfplan")
            plan_abs = Path(plan_path)
            rc = tf.run(["plan", f"-out={plan_path}", *args], forwarder=fwd,
                        saved_plan_note=SavedPlanNote(tf.tool, replace_with_note=True))
        if fwd.received:
            return int(ExitCode.INTERRUPTED)
        if rc not in (0, 2) or not plan_abs.is_file():
            return rc
        plan = _load_plan(tf, plan_path)
        plan_sha = sha256_file(plan_abs)
    records.learn_plan_secrets(plan, session.redactor)
    run = records.RunInfo(
        id=records.RunId(run_id), command="plan", args=tuple(session.redactor.argv(inv.tf_args)),
        tool=tf.tool, tool_version=tf.version, workspace=tf.workspace(), working_dir=str(tf.working_dir),
        plan_sha256=plan_sha, plan_file=out_arg)
    from tfaudit.run.risk import analyse_run

    analysis = analyse_run(session, plan)
    rec = records.base_record("plan.recorded", run, session.actor,
                              plan=records.plan_body(plan, plan_sha, session.redactor))
    if analysis.findings:
        rec["findings"] = analysis.findings
    override = publish(session, [rec])
    console.summary(f"plan {plan_sha[:12]} (plan.recorded, run {run_id[:8]})", session.ledger.local_path or session.ledger.url)
    if analysis.blocked:  # the plan is recorded; exit 5 tells CI it must not be applied
        console.warn(f"tfaudit: blocked by policy: {session.redactor.scrub(analysis.reason)}")
        return override or int(ExitCode.POLICY)
    return override or rc
