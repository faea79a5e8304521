"""An index of `plan.recorded` records, so `tfaudit apply PLANFILE` finds its plan without a scan.

The index maps a plan's sha256, and the plan file's resolved path, to the positions of the
`plan.recorded` records that name them. It is a cache beside the ledger (`LEDGER.plans`; for
shared stores in the user's cache directory), covering the ledger up to a position whose
line digest it keeps. Each use brings it up to date by reading only the lines after that
position; it is rebuilt from the start when it is missing, does not parse, or its last line
is no longer there with the same bytes. Nothing it says is trusted: every record it points
to is read back at its position and must be a `plan.recorded` with that sha256 (or path),
else the index is rebuilt and asked again.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tfaudit.errors import LedgerNotFound
from tfaudit.schema import RecordType
from tfaudit.trail.signing import line_digest
from tfaudit.trail.store import LedgerStore, LedgerView, save_sidecar, sidecar_path

_MARK = b'"type":"plan.recorded"'


def _obj(parent: Mapping[str, Any], key: str) -> Mapping[str, Any]:
    value = parent.get(key)
    return value if isinstance(value, Mapping) else {}


def plan_path(rec: Mapping[str, Any]) -> str | None:
    """The resolved path of the plan file a plan.recorded record names, if it names one."""
    run = _obj(rec, "run")
    pf = run.get("plan_file")
    if not isinstance(pf, str) or not pf:
        return None
    p = Path(pf) if Path(pf).is_absolute() else Path(str(run.get("working_dir", ""))) / pf
    return str(p.resolve())


def _strip(raw: bytes) -> bytes:
    return raw[:-1] if raw.endswith(b"\n") else raw


@dataclass
class PlanIndex:
    size: int = 0
    last: str | None = None  # digest of line `size`
    by_sha: dict[str, list[int]] = field(default_factory=dict)
    by_path: dict[str, list[int]] = field(default_factory=dict)

    def add(self, lines: Iterable[tuple[int, bytes]]) -> None:
        for n, raw in lines:
            if not raw.endswith(b"\n"):
                break  # a torn last line is not a record yet
            self.size, self.last = n, line_digest(raw[:-1])
            if _MARK not in raw:
                continue
            try:
                rec = json.loads(raw)
            except ValueError:
                continue
            if not isinstance(rec, dict) or rec.get("type") != RecordType.PLAN_RECORDED:
                continue
            sha = _obj(rec, "plan").get("sha256")
            if isinstance(sha, str):
                self.by_sha.setdefault(sha, []).append(n)
            path = plan_path(rec)
            if path is not None:
                self.by_path.setdefault(path, []).append(n)

    def to_json(self) -> str:
        return json.dumps({"version": 1, "size": self.size, "line": self.last, "by_sha": self.by_sha,
                           "by_path": self.by_path}) + "\n"

    @classmethod
    def load(cls, path: Path) -> PlanIndex | None:
        try:
            doc = json.loads(path.read_bytes())
            idx = cls(int(doc["size"]), doc["line"], dict(doc["by_sha"]), dict(doc["by_path"]))
        except (OSError, ValueError, KeyError, TypeError):
            return None
        lists = [*idx.by_sha.values(), *idx.by_path.values()]
        if idx.size < 0 or not all(isinstance(v, list) and all(isinstance(n, int) for n in v) for v in lists):
            return None
        return idx


def _fresh(view: LedgerView, idx: PlanIndex | None) -> PlanIndex:
    """The index brought up to the view's tail: from where it stopped when its last line is unchanged,
    else rebuilt from the start."""
    if idx is not None and 0 < idx.size <= view.tail().seq:
        at = next(view.lines(idx.size), None)
        if at is not None and at[0] == idx.size and line_digest(_strip(at[1])) == idx.last:
            idx.add(view.lines(idx.size + 1))
            return idx
    idx = PlanIndex()
    idx.add(view.lines())
    return idx


def _read_back(view: LedgerView, positions: Iterable[int], check: Any) -> list[dict[str, Any]] | None:
    """The records at these positions, each checked; None as soon as one is not what the index says."""
    out = []
    for n in positions:
        at = next(view.lines(n), None)
        if at is None or at[0] != n:
            return None
        try:
            rec = json.loads(at[1])
        except ValueError:
            return None
        chain = _obj(rec, "chain") if isinstance(rec, dict) else {}
        if not isinstance(rec, dict) or rec.get("type") != RecordType.PLAN_RECORDED or chain.get("seq") != n or not check(rec):
            return None
        out.append(rec)
    return out


def plan_records(ledger: LedgerStore, plan_sha256: str, plan_file: Path,
                 env: Mapping[str, str]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(plan.recorded records with this sha256, those naming this plan file), oldest first."""
    try:
        view = ledger.snapshot()
    except LedgerNotFound:
        return [], []
    if view.tail().seq == 0:
        return [], []
    where = sidecar_path(ledger, "plans", env)
    target = str(plan_file.resolve())
    idx = _fresh(view, PlanIndex.load(where))
    for _ in range(2):
        by_sha = _read_back(view, idx.by_sha.get(plan_sha256, []),
                            lambda r: _obj(r, "plan").get("sha256") == plan_sha256)
        by_path = _read_back(view, idx.by_path.get(target, []), lambda r: plan_path(r) == target)
        if by_sha is not None and by_path is not None:
            save_sidecar(where, idx.to_json())
            return by_sha, by_path
        idx = _fresh(view, None)  # the index pointed at something else: rebuild it once
    return _scan(view, plan_sha256, target)  # positions and seqs disagree (a damaged ledger): read it all


def _scan(view: LedgerView, plan_sha256: str, target: str) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    by_sha: list[dict[str, Any]] = []
    by_path: list[dict[str, Any]] = []
    for _, raw in view.lines():
        if _MARK not in raw:
            continue
        try:
            rec = json.loads(raw)
        except ValueError:
            continue
        if isinstance(rec, dict) and rec.get("type") == RecordType.PLAN_RECORDED:
            if _obj(rec, "plan").get("sha256") == plan_sha256:
                by_sha.append(rec)
            if plan_path(rec) == target:
                by_path.append(rec)
    return by_sha, by_path
