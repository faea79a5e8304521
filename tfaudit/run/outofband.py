"""The check that catches state changed behind tfaudit's back.

Before every wrapped command, `check_out_of_band` compares the current state with the
last state the ledger knows for the same state and workspace: the same backend and
location (`run.state_id`: a local state file's absolute path, a bucket and key, ...), so
two checkouts of one configuration at different paths see each other's runs; records
without a state id are matched by working directory. The known state is the `after`
state of the newest run.finished, state.changed or state.out_of_band record (or of a
state.changed record's `destination`, the second state `state mv -state-out` writes,
when that is the state looked up); a run that
saw no state is skipped, as it may only have failed to read one. A serial or lineage
that moved, contents that changed, or a state that appeared or vanished without a record
means someone ran terraform outside tfaudit: that becomes a `state.out_of_band` record
with a `state.out-of-band` finding, and the comparison starts from there next time.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tfaudit import records
from tfaudit.logs import get_logger
from tfaudit.parse.state import State, parse_state
from tfaudit.schema import RecordType
from tfaudit.terraform.binary import Terraform
from tfaudit.terraform.localstate import local_path, override_path, read_local_state, read_state_file, recorded_backend
from tfaudit.trail.jsonline import BadLine, parse_line
from tfaudit.trail.store import LedgerStore

# Record types that say which state a working directory was left in.
log = get_logger("tfaudit")
_STATE_MARKERS = (b'"type":"run.finished"', b'"type":"state.changed"', b'"type":"state.out_of_band"')


# Backend settings that say where a state lives (never credentials: a pg conn_str holds a password).
_LOCATION_KEYS = ("bucket", "key", "prefix", "workspace_key_prefix", "region", "path", "workspace_dir",
                  "container_name", "storage_account_name", "resource_group_name", "organization", "hostname",
                  "workspaces", "address", "schema_name", "namespace", "secret_suffix")


def state_identity(tf: Terraform, path: Path | None = None) -> str | None:
    """Which state this working directory's terraform reads and writes: the backend type and its
    location (local: the state file's absolute path; others: bucket, key, prefix, ...), so runs
    from two checkouts of one configuration find each other's records. None when unknown.
    `path`: a -state/-state-out file (tfaudit.terraform.localstate.StateFiles)."""
    override = override_path(tf, path)
    if override is not None:
        return "local:" + str(override)
    backend = recorded_backend(tf)
    path = local_path(tf, backend)
    if path is not None:
        return "local:" + str(path)
    assert backend is not None
    config: Mapping[str, Any] = backend["config"] if isinstance(backend.get("config"), Mapping) else {}
    where = {k: config[k] for k in _LOCATION_KEYS if config.get(k) not in (None, "", [], {})}
    if not where:
        return None
    return f"{backend['type']}:" + json.dumps(where, sort_keys=True, separators=(",", ":"), default=str)


def read_state(tf: Terraform, path: Path | None = None) -> tuple[bool, State | None]:
    """(whether terraform could say what the state is, the state or None when there is none).
    `path`: a -state/-state-out file, read itself (`state pull` reads the backend's own)."""
    override = override_path(tf, path)
    if override is not None:
        raw = read_state_file(tf, override)
        if raw is None:
            return False, None
    else:
        raw = read_local_state(tf)  # the local backend's file, when it is surely what `state pull` prints
    if raw is None:
        res = tf.capture(["state", "pull"])
        if not res.ok:
            return False, None
        raw = res.stdout
    if not raw.strip():
        return True, None
    if _last_parsed and _last_parsed[0][0] == raw:
        return True, _last_parsed[0][1]  # the state after a run that changed nothing: parsed before
    try:
        state = parse_state(raw, source=str(override) if override is not None else "terraform state pull")
    except Exception as e:  # noqa: BLE001 - an unreadable state must not stop the audited command
        log.warning("state.unreadable", error=str(e)[:200])
        return False, None
    if state is not None:
        _last_parsed[:] = [(raw, state)]
    return True, state


# The last state parsed, with its bytes (a State is frozen: the same bytes give the same State).
_last_parsed: list[tuple[bytes, State]] = []


def load_state(tf: Terraform, path: Path | None = None) -> State | None:
    return read_state(tf, path)[1]


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
    if rtype == RecordType.RUN_FINISHED:
        st = (rec.get("outcome") or {}).get("state")
        if isinstance(st, Mapping) and "after" in st:
            return True, st["after"]
    elif rtype == RecordType.STATE_CHANGED:
        st = (rec.get("detail") or {}).get("state")
        if isinstance(st, Mapping) and "after" in st:
            return True, st["after"]
    elif rtype == RecordType.STATE_OUT_OF_BAND:
        detail = rec.get("detail") or {}
        if "observed" in detail:
            return True, detail["observed"]
    return False, None


def _destination_of(rec: Mapping[str, Any], state_id: str | None) -> tuple[bool, Mapping[str, Any] | None]:
    """(whether the record says which state it left `state_id` in as its destination, that state_ref)."""
    if state_id is None or rec.get("type") != RecordType.STATE_CHANGED:
        return False, None
    dest = (rec.get("detail") or {}).get("destination")
    if not isinstance(dest, Mapping) or dest.get("state_id") != state_id or "after" not in dest:
        return False, None
    after = dest["after"]
    return True, after if isinstance(after, Mapping) else None


def _same_state(run: Mapping[str, Any], working_dir: str, workspace: str, state_id: str | None) -> bool:
    """Whether a record's run worked on this state: by state identity when both runs know it
    (any working directory), else by working directory."""
    if run.get("workspace") != workspace:
        return False
    theirs = run.get("state_id")
    if state_id is not None and isinstance(theirs, str):
        return theirs == state_id
    return run.get("working_dir") == working_dir


def last_known_state(store: LedgerStore, working_dir: str, workspace: str,
                     state_id: str | None = None) -> KnownState | None:
    """The newest state the ledger records for this state (or, for older records, this working
    directory) and workspace."""
    if not store.exists():
        return None
    for _, line in store.lines_backward():
        if not any(m in line for m in _STATE_MARKERS):
            continue
        try:
            rec = parse_line(line)  # the strict reader: no ledger line can crash an apply
        except BadLine:
            continue
        run = rec.get("run") if isinstance(rec, dict) else None
        if not isinstance(run, dict):
            continue
        if _same_state(run, working_dir, workspace, state_id):
            known, ref = _state_of(rec)
        elif run.get("workspace") == workspace:
            known, ref = _destination_of(rec, state_id)
        else:
            continue
        if not known or (ref is None and rec.get("type") != RecordType.STATE_OUT_OF_BAND):
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


def check_out_of_band(store: LedgerStore, tf: Terraform, current: State | None,
                      path: Path | None = None) -> OutOfBand | None:
    """Compare the current state with the ledger's; None when they agree or the ledger knows nothing
    yet. `path`: the -state file the current state was read from."""
    expected = last_known_state(store, str(tf.working_dir), tf.workspace(), state_identity(tf, path))
    if expected is None:
        return None
    if current is None and expected.state is not None:
        # "no state" must be a state terraform says is empty, not one it could not read
        # (an uninitialized directory, a backend without credentials): never guess.
        known, current = read_state(tf, path)
        if not known:
            return None
    return compare(expected, current)
