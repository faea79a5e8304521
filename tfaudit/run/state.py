"""State commands through tfaudit: import, taint, untaint and `state rm|mv|push|replace-provider`.

They run terraform's command unchanged (terminal attached) and write a `state.changed`
record: the state before and after, and the resources that appeared, vanished, moved or
changed taint. `state mv -state-out=PATH` moves resources into a second state: the record's
`destination` names it (`state_id`) with its state before and after, so the next run on that
file finds it too. The out-of-band check that runs before every recorded command lives in
tfaudit.run.outofband.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from tfaudit import records
from tfaudit.errors import UsageError
from tfaudit.parse.state import State
from tfaudit.run.outofband import load_state
from tfaudit.run.recorded import recorded_run
from tfaudit.run.session import Invocation, open_session
from tfaudit.schema import RecordType
from tfaudit.terraform.args import positionals
from tfaudit.ui.console import Console

# `tfaudit state SUB`: recorded subcommands, and read-only ones passed through unrecorded.
RECORDED_STATE_SUBCOMMANDS = ("rm", "mv", "push", "replace-provider")
READ_ONLY_STATE_SUBCOMMANDS = ("list", "show", "pull", "identities")


def _by_address(state: State | None) -> dict[str, Any]:
    return {r.address: r for r in (state.resources if state else ()) if r.deposed is None}


def state_diff(before: State | None, after: State | None, subcommand: str, args: Sequence[str],
               into: tuple[State | None, State | None] | None = None) -> dict[str, Any]:
    """What the command did to the state; `into`: the other state (before, after) that
    `state mv -state-out` moved resources into, where they appear."""
    b, a = _by_address(before), _by_address(after)
    vanished = sorted(set(b) - set(a))
    came, went = (a, b) if into is None else (_by_address(into[1]), _by_address(into[0]))
    appeared = sorted(set(came) - set(went))
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
    console = console or Console()
    session = open_session(inv, env, console)
    tf = session.tf
    command = " ".join(subcommand)
    with recorded_run(session, command) as run:
        before = run.state_before
        rc = tf.run([*subcommand, *inv.tf_args], forwarder=run.fwd)
        after = run.load_state_after()
        dest = run.destination
        into = None if dest is None else (dest.before, load_state(tf, dest.path))
        states = [(before, after)] if into is None else [(before, after), into]
        detail = {
            "command": command,
            "exit_code": rc,
            "status": "interrupted" if run.interrupted else ("succeeded" if rc == 0 else "failed"),
            "changed": any(records.state_ref(b) != records.state_ref(a) for b, a in states),
            "state": {"before": records.state_ref(before), "after": records.state_ref(after)},
            **state_diff(before, after, command, inv.tf_args, into),
            "duration_seconds": round(run.elapsed(), 3),
        }
        if dest is not None and into is not None:  # (the one implies the other)
            detail["destination"] = {"state_id": dest.state_id, "before": records.state_ref(into[0]),
                                     "after": records.state_ref(into[1])}
        override = run.publish([run.record(RecordType.STATE_CHANGED, detail=detail)], applied=True)
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
