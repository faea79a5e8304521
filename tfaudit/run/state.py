"""State commands through tfaudit, and the check that catches state changed behind its back.

`tfaudit import|taint|untaint ...` and `tfaudit state rm|mv|push|replace-provider ...`
run terraform's command unchanged (terminal attached) and write a `state.changed`
record: the state before and after, and the resources that appeared, vanished, moved
or changed taint.

Before every wrapped command, `check_out_of_band` compares the current state with the
last state the ledger knows for the same working directory and workspace (the `after`
state of the newest run.finished, state.changed or state.out_of_band record; a run that
saw no state is skipped, as it may only have failed to read one). A serial
or lineage that moved, contents that changed, or a state that appeared or vanished
without a record means someone ran terraform outside tfaudit: that becomes a
`state.out_of_band` record with a `state.out-of-band` finding, and the comparison
starts from there next time.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from tfaudit import records
from tfaudit.errors import UsageError
from tfaudit.parse.state import State, parse_state
from tfaudit.terraform.args import positionals

if TYPE_CHECKING:
    from tfaudit.run.apply import Console, Invocation, Session
    from tfaudit.terraform.binary import Terraform
    from tfaudit.trail.store import LedgerStore

# Record types that say which state a working directory was left in.
_STATE_MARKERS = (b'"type":"run.finished"', b'"type":"state.changed"', b'"type":"state.out_of_band"')

# `tfaudit state SUB`: recorded subcommands, and read-only ones passed through unrecorded.
RECORDED_STATE_SUBCOMMANDS = ("rm", "mv", "push", "replace-provider")
READ_ONLY_STATE_SUBCOMMANDS = ("list", "show", "pull", "identities")


# --- what the ledger last saw ---------------------------------------------------------------
@dataclass(frozen=True)
class KnownState:
    state: Mapping[str, Any] | None  # a state_ref (serial, lineage, sha256, resources) or None: no state
    record_id: str
    record_type: str
    time: str
    seq: int | None
    run_id: str | None

    def as_dict(self) -> dict[str, Any]:
        return {"state": dict(self.state) if self.state else None, "record": {
            "id": self.record_id, "type": self.record_type, "time": self.time, "seq": self.seq, "run_id": self.run_id}}


def _state_of(rec: Mapping[str, Any]) -> tuple[bool, Mapping[str, Any] | None]:
    """(whether the record says which state it left, that state_ref or None)."""
    rtype = rec.get("type")
    if rtype == "run.finished":
        st = (rec.get("outcome") or {}).get("state")
        if isinstance(st, Mapping) and "after" in st:
            return True, st["after"]
    elif rtype == "state.changed":
        st = (rec.get("detail") or {}).get("state")
        if isinstance(st, Mapping) and "after" in st:
            return True, st["after"]
    elif rtype == "state.out_of_band":
        detail = rec.get("detail") or {}
        if "observed" in detail:
            return True, detail["observed"]
    return False, None


def last_known_state(ledger: LedgerStore, working_dir: str, workspace: str) -> KnownState | None:
    """The newest state the ledger records for this working directory and workspace: read from the
    tail backwards, so it costs the records since that state, not the ledger's length."""
    for _, line in ledger.lines_backward():
        if not any(m in line for m in _STATE_MARKERS):
            continue
        try:
            rec = json.loads(line)
        except ValueError:
            continue
        run = rec.get("run") if isinstance(rec, dict) else None
        if not isinstance(run, dict) or run.get("working_dir") != working_dir or run.get("workspace") != workspace:
            continue
        known, ref = _state_of(rec)
        if not known or (ref is None and rec.get("type") != "state.out_of_band"):
            # A run that saw no state may only have failed to read it (no init, no backend
            # credentials): it says nothing. An out-of-band record's "none" was checked.
            continue
        chain = rec.get("chain") or {}
        return KnownState(ref if isinstance(ref, Mapping) else None, str(rec.get("id", "")), str(rec.get("type")),
                          str(rec.get("time", "")), chain.get("seq"), run.get("id"))
    return None


# --- out-of-band changes ---------------------------------------------------------------------
@dataclass(frozen=True)
class OutOfBand:
    expected: KnownState
    observed: Mapping[str, Any] | None
    reasons: tuple[str, ...]

    def message(self) -> str:
        return "state changed outside tfaudit: " + "; ".join(self.reasons)

    def detail(self) -> dict[str, Any]:
        out = {"expected": self.expected.as_dict(), "observed": dict(self.observed) if self.observed else None,
               "reasons": list(self.reasons)}
        changed = records.state_diff(self.expected.state, self.observed)
        if changed is not None:  # which resources changed outside tfaudit (history and report list them)
            out["resources"] = changed
        return out

    def findings(self, config: Any) -> list[dict[str, Any]]:
        """The `state.out-of-band` finding, as the config rates it (none when it is disabled)."""
        from tfaudit.analysis.engine import Analyzer
        from tfaudit.analysis.policy import Policy

        found = Analyzer(Policy.from_config(config)).finding("state.out-of-band", None, self.message())
        return [found.as_dict()] if found is not None else []


def compare(expected: KnownState, current: State | None) -> OutOfBand | None:
    was = expected.state
    now = records.state_ref(current)
    reasons: list[str] = []
    if was is None and now is None:
        return None
    if was is None:
        assert now is not None
        reasons.append(f"a state (serial {now['serial']}, lineage {now['lineage']}) appeared where the state "
                       "had been found gone")
    elif now is None:
        reasons.append(f"the state (serial {was.get('serial')}) the last recorded run left is gone")
    else:
        if was.get("lineage") != now["lineage"]:
            reasons.append(f"lineage changed from {was.get('lineage')} to {now['lineage']} (the state was replaced)")
        if was.get("serial") != now["serial"]:
            reasons.append(f"serial moved from {was.get('serial')} to {now['serial']} without a record")
        if not reasons and was.get("sha256") != now["sha256"]:
            reasons.append(f"contents changed at serial {now['serial']} without a new serial (edited by hand?)")
        if reasons and was.get("resources") is not None and was.get("resources") != now["resources"]:
            reasons.append(f"resources {was.get('resources')} -> {now['resources']}")
    if not reasons:
        return None
    return OutOfBand(expected, now, tuple(reasons))


def check_out_of_band(session: Session, current: State | None) -> OutOfBand | None:
    """Compare the current state with the ledger's; None when they agree or the ledger knows nothing yet."""
    tf = session.tf
    expected = last_known_state(session.ledger, str(tf.working_dir), tf.workspace())
    if expected is None:
        return None
    if current is None and expected.state is not None:
        # "no state" must be a state terraform says is empty, not one it could not read
        # (an uninitialized directory, a backend without credentials): never guess.
        known, current = read_state(tf)
        if not known:
            return None
    return compare(expected, current)


def out_of_band_record(session: Session, run: records.RunInfo, oob: OutOfBand) -> dict[str, Any]:
    return records.base_record("state.out_of_band", run, session.actor, detail=oob.detail(),
                               findings=oob.findings(session.config))


def record_out_of_band(session: Session, current: State | None, run_id: str, command: str) -> OutOfBand | None:
    """Check, and when the state moved behind tfaudit's back, append a state.out_of_band record now.

    Written at once, before terraform runs, so the record exists even if the command then
    fails; it carries the run id the command's own records will use.
    """
    from tfaudit.analysis.policy import Policy

    Policy.from_config(session.config)  # a waiver naming no rule fails here, before terraform runs
    oob = check_out_of_band(session, current)
    if oob is None:
        return None
    tf = session.tf
    run = records.RunInfo(id=records.RunId(run_id), command=command,
                          args=tuple(session.redactor.argv(session.inv.tf_args)), tool=tf.tool,
                          tool_version=tf.version, workspace=tf.workspace(), working_dir=str(tf.working_dir))
    session.ledger.append([out_of_band_record(session, run, oob)], session.signer)
    session.console.warn(f"tfaudit: warning: {oob.message()} (recorded as state.out_of_band)")
    return oob


# --- state commands ----------------------------------------------------------------------------
def read_state(tf: Terraform) -> tuple[bool, State | None]:
    """(whether terraform could say what the state is, the state or None when there is none)."""
    res = tf.capture(["state", "pull"])
    if not res.ok:
        return False, None
    if not res.stdout.strip():
        return True, None
    try:
        return True, parse_state(res.stdout, source="terraform state pull")
    except Exception:  # noqa: BLE001 - an unreadable state must not stop the audited command
        return False, None


def load_state(tf: Terraform) -> State | None:
    return read_state(tf)[1]


def state_diff(before: State | None, after: State | None, subcommand: str, args: Sequence[str]) -> dict[str, Any]:
    b = {r.address: r for r in (before.resources if before else ()) if r.deposed is None}
    a = {r.address: r for r in (after.resources if after else ()) if r.deposed is None}
    vanished = sorted(set(b) - set(a))
    appeared = sorted(set(a) - set(b))
    moved: list[dict[str, str]] = []
    if subcommand == "state mv":
        pos = positionals(args)
        if len(pos) >= 2:
            src, dst = pos[-2], pos[-1]
            for v in list(vanished):
                if v == src or v.startswith((src + ".", src + "[")):
                    target = dst + v[len(src):]
                    if target in appeared:
                        moved.append({"from": v, "to": target})
                        vanished.remove(v)
                        appeared.remove(target)
    common = set(a) & set(b)
    return {
        "appeared": appeared,
        "vanished": vanished,
        "moved": moved,
        "tainted": sorted(x for x in common if a[x].tainted and not b[x].tainted),
        "untainted": sorted(x for x in common if b[x].tainted and not a[x].tainted),
    }


def run_state_command(inv: Invocation, env: Mapping[str, str], subcommand: Sequence[str],
                      console: Console | None = None) -> int:
    """Run `terraform <subcommand> <args>` and record the state change it made."""
    from tfaudit.terraform import proc as _proc
    from tfaudit.run.apply import Console, open_session, publish

    console = console or Console()
    session = open_session(inv, env, console)
    tf = session.tf
    t0 = time.monotonic()
    command = " ".join(subcommand)
    run_id = records.new_id()
    before = load_state(tf)
    record_out_of_band(session, before, run_id, command)
    with _proc.forwarding_signals() as fwd:
        rc = tf.run([*subcommand, *inv.tf_args], forwarder=fwd)
    after = load_state(tf)
    run = records.RunInfo(id=records.RunId(run_id), command=command,
                          args=tuple(session.redactor.argv(inv.tf_args)), tool=tf.tool, tool_version=tf.version,
                          workspace=tf.workspace(), working_dir=str(tf.working_dir))
    changed = records.state_ref(before) != records.state_ref(after)
    detail = {
        "command": command,
        "exit_code": rc,
        "status": "interrupted" if fwd.received else ("succeeded" if rc == 0 else "failed"),
        "changed": changed,
        "state": {"before": records.state_ref(before), "after": records.state_ref(after)},
        **state_diff(before, after, command, inv.tf_args),
        "duration_seconds": round(time.monotonic() - t0, 3),
    }
    rec = records.base_record("state.changed", run, session.actor, detail=detail)
    override = publish(session, [rec], applied=True)
    return override or rc


def state_subcommand(args: Sequence[str]) -> tuple[list[str], list[str], bool]:
    """(terraform subcommand words, its arguments, whether to record) for `tfaudit state ...`."""
    if not args:
        raise UsageError("tfaudit state needs a subcommand", hint="rm, mv, push or replace-provider (list, show, pull pass through)")
    sub, rest = args[0], list(args[1:])
    if sub in RECORDED_STATE_SUBCOMMANDS:
        return ["state", sub], rest, True
    if sub in READ_ONLY_STATE_SUBCOMMANDS:
        return ["state", sub], rest, False
    raise UsageError(f"tfaudit state {sub}: not a state subcommand tfaudit knows",
                     hint="use rm, mv, push, replace-provider (recorded) or list, show, pull")
