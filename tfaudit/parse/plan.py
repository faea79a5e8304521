"""`terraform show -json PLANFILE` output into typed, frozen values.

Accepts plan format_version 0.x and 1.x (terraform 0.12 to 1.15, OpenTofu), the
HCP Terraform "redacted" JSON plan (`plan_format_version`), UTF-16 files and the
hashicorp/setup-terraform wrapper (see `_jsonio`). Rejects, with a PlanError that
says what the file looks like instead, anything that is not a plan.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from types import MappingProxyType
from typing import Any

from tfaudit.errors import PlanError
from tfaudit.parse._jsonio import DESCRIPTIONS, decode_documents, instance_address, sniff

HINT = "pass the output of 'terraform show -json PLANFILE'"

# Every `actions` list terraform's jsonplan writes (internal/command/jsonplan actionString).
KNOWN_ACTIONS: frozenset[tuple[str, ...]] = frozenset({
    ("no-op",),
    ("create",),
    ("read",),
    ("update",),
    ("delete",),
    ("forget",),
    ("delete", "create"),
    ("create", "delete"),
    ("create", "forget"),
})
_OUTPUT_ACTIONS: frozenset[tuple[str, ...]] = frozenset({("no-op",), ("create",), ("update",), ("delete",)})
_FORMAT_VERSION = re.compile(r"^(\d+)\.(\d+)$")
_WORD = re.compile(r"^[a-z][a-z-]{0,19}$")


class ChangeAction(StrEnum):
    """One word per resource change, as terraform's UI names it."""

    CREATE = "create"
    READ = "read"
    UPDATE = "update"
    DELETE = "delete"
    REPLACE = "replace"  # both orders, and create-then-forget
    NO_OP = "no-op"
    FORGET = "forget"
    IMPORT = "import"  # importing, otherwise no-op
    MOVE = "move"  # previous_address differs, otherwise no-op


_SINGLE: Mapping[str, ChangeAction] = {
    "create": ChangeAction.CREATE,
    "read": ChangeAction.READ,
    "update": ChangeAction.UPDATE,
    "delete": ChangeAction.DELETE,
    "forget": ChangeAction.FORGET,
    "no-op": ChangeAction.NO_OP,
}


@dataclass(frozen=True)
class ResourceChange:
    address: str
    previous_address: str | None
    module: str | None  # module_address; None for the root module
    mode: str  # "managed" | "data"
    type: str
    name: str
    index: int | str | None  # count index or for_each key
    provider: str  # provider_name
    actions: tuple[str, ...]  # exactly as in the plan, e.g. ("delete", "create")
    action_reason: str | None
    before: Any
    after: Any
    after_unknown: Any
    before_sensitive: Any
    after_sensitive: Any
    replace_paths: tuple[tuple[str | int, ...], ...]
    importing: Mapping[str, Any] | None
    deposed: str | None
    generated_config: str | None

    @property
    def is_noop(self) -> bool:
        """Nothing is applied to the object (a no-op or a data source read)."""
        return self.actions in (("no-op",), ("read",))

    @property
    def is_replace(self) -> bool:
        return len(self.actions) == 2

    @property
    def action(self) -> ChangeAction:
        if len(self.actions) == 2:
            return ChangeAction.REPLACE
        single = _SINGLE[self.actions[0]]
        if single is ChangeAction.NO_OP:
            # Same precedence as terraform's UI: a move wins over an import.
            if self.previous_address is not None and self.previous_address != self.address:
                return ChangeAction.MOVE
            if self.importing is not None:
                return ChangeAction.IMPORT
        return single


@dataclass(frozen=True)
class OutputChange:
    name: str
    actions: tuple[str, ...]
    sensitive: bool  # before_sensitive or after_sensitive is true (or partly true)


@dataclass(frozen=True)
class Plan:
    format_version: str
    terraform_version: str | None
    # a tuple, or a tfaudit.parse.spool.ChangeSpool that decodes each change when asked
    resource_changes: Sequence[ResourceChange]
    resource_drift: tuple[ResourceChange, ...]
    output_changes: tuple[OutputChange, ...]
    errored: bool
    applyable: bool | None
    complete: bool | None
    timestamp: str | None
    sensitive_variables: frozenset[str]  # root variables declared `sensitive = true`
    variable_names: frozenset[str]  # declared in configuration or given in `variables`
    # The document's small top-level members (variables, output_changes, ...). The big ones
    # (RAW_DROPPED) are not kept: a 100,000-change plan would hold them through the whole apply.
    raw: Mapping[str, Any]

    @property
    def changes(self) -> tuple[ResourceChange, ...]:
        """Resource changes that alter an object or the state.

        Imports and moves are kept although their actions are ["no-op"]: they still
        change what the state tracks, which is what an audit trail is for.
        """
        return tuple(rc for rc in self.resource_changes
                     if rc.action not in (ChangeAction.NO_OP, ChangeAction.READ))

    @property
    def has_changes(self) -> bool:
        return bool(self.changes) or any(oc.actions != ("no-op",) for oc in self.output_changes)

    def action_counts(self) -> Mapping[ChangeAction, int]:
        return MappingProxyType(dict(Counter(rc.action for rc in self.resource_changes)))

    def change_for(self, address: str) -> ResourceChange | None:
        """The resource change for `address` (not a deposed object), if planned."""
        for rc in self.resource_changes:
            if rc.address == address and rc.deposed is None:
                return rc
        return None


def _shown(value: Any) -> str:
    # Only echo values that look like terraform keywords: files may hold secrets.
    return repr(value) if isinstance(value, str) and _WORD.match(value) else "<unrecognised>"




def _opt_str(obj: Mapping[str, Any], key: str, where: str, source: str) -> str | None:
    value = obj.get(key)
    if value is None or isinstance(value, str):
        return value
    raise PlanError(f"{source}: {where}.{key} is not a string", hint=HINT)


def _req_str(obj: Mapping[str, Any], key: str, where: str, source: str) -> str:
    value = obj.get(key)
    if isinstance(value, str):
        return value
    raise PlanError(f"{source}: {where} has no {key}", hint=HINT)


def _opt_bool(doc: Mapping[str, Any], key: str, source: str) -> bool | None:
    value = doc.get(key)
    if value is None or isinstance(value, bool):
        return value
    raise PlanError(f"{source}: {key} is not true or false", hint=HINT)


def _replace_paths(value: Any, where: str, source: str) -> tuple[tuple[str | int, ...], ...]:
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(p, list) for p in value):
        raise PlanError(f"{source}: {where}.change.replace_paths is not a list of paths", hint=HINT)
    paths: list[tuple[str | int, ...]] = []
    for path in value:
        if not all(isinstance(step, (str, int)) and not isinstance(step, bool) for step in path):
            raise PlanError(f"{source}: {where}.change.replace_paths has a step that is not a key or index",
                            hint=HINT)
        paths.append(tuple(path))
    return tuple(paths)


_CHANGE_FIELDS = frozenset(ResourceChange.__dataclass_fields__)


def _new_change(**fields: Any) -> ResourceChange:
    """ResourceChange(**fields), without the frozen dataclass's 19 object.__setattr__ calls.

    Filling __dict__ builds the same object (equality, hash and repr read the fields) at a
    seventh of the cost, which matters at 100k changes a plan. Every field must be given.
    """
    assert fields.keys() == _CHANGE_FIELDS
    rc: ResourceChange = object.__new__(ResourceChange)
    rc.__dict__.update(fields)
    return rc


def _resource_change(obj: Any, where: str, source: str) -> ResourceChange:
    if not isinstance(obj, dict):
        raise PlanError(f"{source}: {where} is not an object", hint=HINT)
    change = obj.get("change")
    if not isinstance(change, dict):
        raise PlanError(f"{source}: {where} has no change object", hint=HINT)
    mode = _req_str(obj, "mode", where, source)
    rtype = _req_str(obj, "type", where, source)
    name = _req_str(obj, "name", where, source)
    module = _opt_str(obj, "module_address", where, source) or None
    index = obj.get("index")
    if isinstance(index, bool) or not (index is None or isinstance(index, (int, str))):
        raise PlanError(f"{source}: {where}.index is neither a count index nor a for_each key", hint=HINT)
    address = _opt_str(obj, "address", where, source)
    if address is None:
        # terraform 1.0.0 wrote resource_drift entries without "address" (fixed in 1.0.1).
        address = instance_address(module, mode, rtype, name, index)
    where = f"{where} ({address})"

    actions_raw = change.get("actions")
    if not isinstance(actions_raw, list) or not all(isinstance(a, str) for a in actions_raw):
        raise PlanError(f"{source}: {where} has no list of actions", hint=HINT)
    actions = tuple(actions_raw)
    if actions not in KNOWN_ACTIONS:
        shown = ", ".join(_shown(a) for a in actions) or "none"
        raise PlanError(f"{source}: {where} has unknown actions [{shown}]",
                        hint="this terraform version may be newer than tfaudit supports; upgrade tfaudit")

    importing = change.get("importing")
    if importing is not None and not isinstance(importing, dict):
        raise PlanError(f"{source}: {where}.change.importing is not an object", hint=HINT)
    return _new_change(
        address=address,
        previous_address=_opt_str(obj, "previous_address", where, source),
        module=module,
        mode=mode,
        type=rtype,
        name=name,
        index=index,
        provider=_req_str(obj, "provider_name", where, source),
        actions=actions,
        action_reason=_opt_str(obj, "action_reason", where, source),
        before=change.get("before"),
        after=change.get("after"),
        after_unknown=change.get("after_unknown"),
        before_sensitive=change.get("before_sensitive"),
        after_sensitive=change.get("after_sensitive"),
        replace_paths=_replace_paths(change.get("replace_paths"), where, source),
        importing=importing,
        deposed=_opt_str(obj, "deposed", where, source),
        generated_config=_opt_str(change, "generated_config", where, source),
    )


def _changes(doc: Mapping[str, Any], key: str, source: str) -> tuple[ResourceChange, ...]:
    items = doc.get(key)
    if items is None:
        return ()
    if not isinstance(items, list):
        raise PlanError(f"{source}: {key} is not a list", hint=HINT)
    return tuple(_resource_change(obj, f"{key}[{i}]", source) for i, obj in enumerate(items))


def _is_sensitive(mask: Any) -> bool:
    # A mask is `true`, or an object/list with `true` somewhere for partly sensitive values.
    if mask is True:
        return True
    if isinstance(mask, dict):
        return any(_is_sensitive(v) for v in mask.values())
    if isinstance(mask, list):
        return any(_is_sensitive(v) for v in mask)
    return False


def _output_changes(doc: Mapping[str, Any], source: str) -> tuple[OutputChange, ...]:
    items = doc.get("output_changes")
    if items is None:
        return ()
    if not isinstance(items, dict):
        raise PlanError(f"{source}: output_changes is not an object", hint=HINT)
    out: list[OutputChange] = []
    for name, change in items.items():
        if not isinstance(change, dict) or not isinstance(change.get("actions"), list):
            raise PlanError(f"{source}: output_changes.{name} has no list of actions", hint=HINT)
        actions = change["actions"]
        if tuple(actions) not in _OUTPUT_ACTIONS:
            raise PlanError(f"{source}: output_changes.{name} has unknown actions", hint=HINT)
        sensitive = _is_sensitive(change.get("before_sensitive")) or _is_sensitive(change.get("after_sensitive"))
        out.append(OutputChange(name=name, actions=tuple(actions), sensitive=sensitive))
    return tuple(out)


def _variables(doc: Mapping[str, Any]) -> tuple[frozenset[str], frozenset[str]]:
    config = doc.get("configuration")
    root = config.get("root_module") if isinstance(config, dict) else None
    declared = root.get("variables") if isinstance(root, dict) else None
    declared = declared if isinstance(declared, dict) else {}
    given = doc.get("variables")
    given = given if isinstance(given, dict) else {}
    sensitive = frozenset(n for n, v in declared.items() if isinstance(v, dict) and v.get("sensitive") is True)
    return sensitive, frozenset(declared) | frozenset(given)


def _not_a_plan(doc: Any, source: str) -> PlanError:
    kind = sniff(doc)
    if kind == "plan-without-format-version":
        # terraform always writes format_version; without it nothing says how to read the rest.
        return PlanError(f"{source}: looks like {DESCRIPTIONS[kind]}", hint=HINT)
    return PlanError(f"{source}: looks like {DESCRIPTIONS[kind]}, not a plan", hint=HINT)


# Read into typed fields above, or never read by tfaudit: not kept in Plan.raw. (`checks` is kept:
# one small entry per checked object, read by plan_checks for the records and the check.failed rule.)
RAW_DROPPED = frozenset({"resource_changes", "resource_drift", "planned_values", "prior_state", "configuration",
                         "relevant_attributes"})


def _plan(doc: Any, source: str) -> Plan:
    if not isinstance(doc, dict) or sniff(doc) != "plan":
        raise _not_a_plan(doc, source)
    # HCP Terraform's redacted JSON plan names the field plan_format_version.
    version = doc["format_version"] if "format_version" in doc else doc["plan_format_version"]
    match = _FORMAT_VERSION.match(version) if isinstance(version, str) else None
    if match is None:
        raise PlanError(f"{source}: format_version is not a version number", hint=HINT)
    if int(match.group(1)) not in (0, 1):
        raise PlanError(f"{source}: unsupported format_version {version}",
                        hint="this plan was written by a terraform newer than tfaudit supports; upgrade tfaudit")
    terraform_version = doc.get("terraform_version")
    timestamp = doc.get("timestamp")
    sensitive, names = _variables(doc)
    return Plan(
        format_version=version,
        terraform_version=terraform_version if isinstance(terraform_version, str) else None,
        resource_changes=_changes(doc, "resource_changes", source),
        resource_drift=_changes(doc, "resource_drift", source),
        output_changes=_output_changes(doc, source),
        errored=_opt_bool(doc, "errored", source) or False,
        applyable=_opt_bool(doc, "applyable", source),
        complete=_opt_bool(doc, "complete", source),
        timestamp=timestamp if isinstance(timestamp, str) else None,
        sensitive_variables=sensitive,
        variable_names=names,
        raw=MappingProxyType({k: v for k, v in doc.items() if k not in RAW_DROPPED}),
    )


def parse_plans(data: bytes | str | Mapping[str, Any], *, source: str = "<plan>") -> list[Plan]:
    """Every plan in `data`; several when plans were concatenated (terragrunt run-all)."""
    if isinstance(data, Mapping):
        return [_plan(dict(data), source)]
    docs = decode_documents(data, source=source, error=PlanError, hint=HINT)
    return [_plan(doc, source) for doc in docs]


def parse_plan(data: bytes | str | Mapping[str, Any], *, source: str = "<plan>") -> Plan:
    """The one plan in `data`; a PlanError if there are several."""
    plans = parse_plans(data, source=source)
    if len(plans) != 1:
        raise PlanError(f"{source}: holds {len(plans)} concatenated plans, expected one",
                        hint="pass one plan per file (terragrunt run-all show -json writes one per module)")
    return plans[0]


def _read(path: str | Path) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as e:
        raise PlanError(f"{path}: cannot read ({e.strerror or e.__class__.__name__})", hint=HINT) from e


def load_plan(path: str | Path) -> Plan:
    return parse_plan(_read(path), source=str(path))


def load_plans(path: str | Path) -> list[Plan]:
    return parse_plans(_read(path), source=str(path))


def plan_checks(plan: Plan) -> tuple[Mapping[str, Any], ...]:
    """The plan's `checks` (check blocks, pre/postconditions, variable validations, output
    conditions), one entry per checked object: {"address", "kind", "status", "problems"}.
    status is terraform's: pass, fail, error, or unknown (decided only at apply)."""
    raw = plan.raw.get("checks") if isinstance(plan.raw, Mapping) else None
    out: list[Mapping[str, Any]] = []
    for check in raw if isinstance(raw, list) else ():
        if not isinstance(check, dict):
            continue
        addr: dict[str, Any] = check["address"] if isinstance(check.get("address"), dict) else {}
        kind = addr.get("kind") if isinstance(addr.get("kind"), str) else "unknown"
        instances = [i for i in check.get("instances") or [] if isinstance(i, dict)] or [
            {"address": addr, "status": check.get("status")}]
        for inst in instances:
            iaddr: dict[str, Any] = inst["address"] if isinstance(inst.get("address"), dict) else {}
            problems = [pr.get("message") for pr in inst.get("problems") or [] if isinstance(pr, dict)]
            out.append(MappingProxyType({
                "address": str(iaddr.get("to_display") or addr.get("to_display") or "?"), "kind": kind,
                "status": str(inst.get("status") or check.get("status") or "unknown"),
                "problems": tuple(m for m in problems if isinstance(m, str)),
            }))
    return tuple(out)


# For streaming readers (tfaudit.parse.plan_stream) that decode a plan piece by piece.
def resource_change_from_json(obj: Any, where: str, source: str = "<plan>") -> ResourceChange:
    """One resource_changes/resource_drift element, validated exactly as parse_plan validates it."""
    return _resource_change(obj, where, source)


def plan_from_document(doc: Any, source: str = "<plan>") -> Plan:
    """A plan from an already-decoded JSON document (the same checks as parse_plan)."""
    return _plan(doc, source)


__all__ = [
    "KNOWN_ACTIONS", "ChangeAction", "OutputChange", "Plan", "ResourceChange",
    "load_plan", "load_plans", "parse_plan", "parse_plans", "plan_checks", "plan_from_document",
    "resource_change_from_json",
]
