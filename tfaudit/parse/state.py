"""`terraform state pull` output and .tfstate files into a typed summary.

tfaudit records which state a run saw (lineage, serial, a hash of the exact bytes)
and which resource instances it held; it does not interpret attribute values.

Read:
- state format v4 (terraform 0.12+ and OpenTofu), with deposed and tainted objects;
- legacy v1-v3 (terraform <= 0.11: a `modules` list, resources keyed "type.name[.N]");
- `terraform show -json` of a state (`format_version` + `values`), which has no
  lineage or serial, so `version` is None.

Rejected with StateError: an OpenTofu encrypted state, a format version above 4,
anything that is not a state.

`terraform_version` and provider addresses are kept verbatim and not validated:
they are metadata, and terraform 1.11 itself loads a state claiming
terraform_version 999.0.0. terraform does refuse one that is not a version
string at all, but refusing it here would lose the audit record of a run over a
state terraform wrote, so tfaudit records it as found.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import MappingProxyType
from typing import Any

from tfaudit.errors import StateError
from tfaudit.parse._jsonio import DESCRIPTIONS, decode_documents, decode_text, instance_address, sniff

HINT = "pass the output of 'terraform state pull' or a .tfstate file"
SUPPORTED_VERSIONS = (1, 2, 3, 4)
_LEGACY_KEY = re.compile(r"^(?P<data>data\.)?(?P<type>[^.]+)\.(?P<name>[^.]+)(?:\.(?P<index>\d+))?$")


@dataclass(frozen=True)
class StateResource:
    address: str  # full instance address, e.g. module.a.aws_s3_bucket.b["x"]
    mode: str  # "managed" | "data"
    type: str
    name: str
    module: str | None  # e.g. module.a, None for the root module
    index: int | str | None  # count index or for_each key
    provider: str  # as written in the state
    deposed: str | None = None  # deposed object key (create_before_destroy left it behind)
    tainted: bool = False
    digest: str | None = None  # of the instance's attributes and status: what changed between two states
    # The object's attribute values (v4 and show -json; None for legacy states) and the paths
    # terraform marks sensitive in it, each a tuple of attribute names and indexes.
    attributes: Mapping[str, Any] | None = field(default=None, compare=False, repr=False)
    sensitive_paths: tuple[tuple[str | int, ...], ...] = field(default=(), compare=False, repr=False)


def instance_digest(inst: Mapping[str, Any]) -> str:
    """A short digest of one instance's attributes and status (v4 state), to name what changed."""
    body = {"attributes": inst.get("attributes", inst.get("attributes_flat")), "status": inst.get("status")}
    return hashlib.sha256(json.dumps(body, sort_keys=True, separators=(",", ":")).encode()).hexdigest()[:16]


@dataclass(frozen=True)
class State:
    version: int | None  # state format version; None for `terraform show -json` output
    terraform_version: str | None
    serial: int | None
    lineage: str | None
    sha256: str  # hex digest of the exact bytes given
    resources: tuple[StateResource, ...]  # one per instance (and per deposed object)
    outputs: tuple[str, ...]  # root module output names, sorted
    format_version: str | None = None  # set only for `terraform show -json` output
    # check_results (v4): one per checkable object, {"address", "kind", "status", "problems"}
    checks: tuple[Mapping[str, Any], ...] = field(default=(), compare=False, repr=False)

    @property
    def addresses(self) -> frozenset[str]:
        return frozenset(r.address for r in self.resources if r.deposed is None)

    def without_values(self) -> State:
        """This state without its objects' attribute values (what records about it need: addresses,
        digests, serial, lineage), for a state kept through a long run."""
        return replace(self, resources=tuple(replace(r, attributes=None, sensitive_paths=()) for r in self.resources))

    def objects(self, address: str) -> tuple[StateResource, ...]:
        """Every object at an instance address: the current one first, then deposed ones."""
        found = [r for r in self.resources if r.address == address]
        return tuple(sorted(found, key=lambda r: r.deposed is not None))


def _path_step(step: Any) -> str | int | None:
    """One step of a v4 sensitive_attributes path: {"type": "get_attr", "value": "password"}
    or {"type": "index", "value": {"value": 0, "type": "number"}}."""
    if not isinstance(step, dict):
        return None
    value = step.get("value")
    if step.get("type") == "get_attr" and isinstance(value, str):
        return value
    if step.get("type") == "index" and isinstance(value, dict):
        key = value.get("value")
        if isinstance(key, str) or (isinstance(key, int) and not isinstance(key, bool)):
            return key
    return None


def _sensitive_paths(raw: Any) -> tuple[tuple[str | int, ...], ...]:
    paths: list[tuple[str | int, ...]] = []
    for path in raw if isinstance(raw, list) else ():
        known: list[str | int] = []
        for step in path if isinstance(path, list) else [None]:
            key = _path_step(step)
            if key is None:  # a step we cannot read hides everything below the part we could
                break
            known.append(key)
        paths.append(tuple(known))
    return tuple(paths)


def _show_json_sensitive(mask: Any, prefix: tuple[str | int, ...] = ()) -> list[tuple[str | int, ...]]:
    """`sensitive_values` of `terraform show -json` (a mask shaped like the value) as paths."""
    if mask is True:
        return [prefix]
    if isinstance(mask, dict):
        return [p for k, m in mask.items() for p in _show_json_sensitive(m, (*prefix, k))]
    if isinstance(mask, list):
        return [p for i, m in enumerate(mask) for p in _show_json_sensitive(m, (*prefix, i))]
    return []


def _checks(raw: Any) -> tuple[Mapping[str, Any], ...]:
    """v4 `check_results`, one entry per checked object (the config's own entry when it has none)."""
    out: list[Mapping[str, Any]] = []
    for res in raw if isinstance(raw, list) else ():
        if not isinstance(res, dict):
            continue
        kind = res.get("object_kind") if isinstance(res.get("object_kind"), str) else "unknown"
        objects = [o for o in res.get("objects") or [] if isinstance(o, dict)]
        if not objects:
            objects = [{"object_addr": res.get("config_addr"), "status": res.get("status")}]
        for obj in objects:
            msgs = obj.get("failure_messages")
            out.append(MappingProxyType({
                "address": str(obj.get("object_addr") or res.get("config_addr") or "?"), "kind": kind,
                "status": str(obj.get("status") or "unknown"),
                "problems": tuple(m for m in msgs if isinstance(m, str)) if isinstance(msgs, list) else (),
            }))
    return tuple(out)




def _index(value: Any, where: str, source: str) -> int | str | None:
    if value is None or isinstance(value, str) or (isinstance(value, int) and not isinstance(value, bool)):
        return value
    raise StateError(f"{source}: {where} has an index_key that is neither a count index nor a for_each key",
                     hint=HINT)


def _str_field(obj: Mapping[str, Any], key: str, where: str, source: str) -> str:
    value = obj.get(key)
    if isinstance(value, str) and value:
        return value
    raise StateError(f"{source}: {where} has no {key}", hint=HINT)


def _v4_resources(doc: Mapping[str, Any], source: str) -> Iterator[StateResource]:
    resources = doc.get("resources") or []
    if not isinstance(resources, list):
        raise StateError(f"{source}: resources is not a list", hint=HINT)
    for i, res in enumerate(resources):
        where = f"resources[{i}]"
        if not isinstance(res, dict):
            raise StateError(f"{source}: {where} is not an object", hint=HINT)
        mode = _str_field(res, "mode", where, source)
        rtype = _str_field(res, "type", where, source)
        name = _str_field(res, "name", where, source)
        module = res.get("module") or None
        if module is not None and not isinstance(module, str):
            raise StateError(f"{source}: {where}.module is not a string", hint=HINT)
        provider = res.get("provider")
        instances = res.get("instances") or []
        if not isinstance(instances, list) or not all(isinstance(x, dict) for x in instances):
            raise StateError(f"{source}: {where}.instances is not a list of objects", hint=HINT)
        for inst in instances:
            index = _index(inst.get("index_key"), where, source)
            deposed = inst.get("deposed")
            yield StateResource(
                address=instance_address(module, mode, rtype, name, index),
                mode=mode, type=rtype, name=name, module=module, index=index,
                provider=provider if isinstance(provider, str) else "",
                deposed=deposed if isinstance(deposed, str) else None,
                tainted=inst.get("status") == "tainted",
                attributes=_attributes(inst.get("attributes")),
                sensitive_paths=_sensitive_paths(inst.get("sensitive_attributes")),
                digest=instance_digest(inst),
            )


def _attributes(value: Any) -> Mapping[str, Any] | None:
    return MappingProxyType(value) if isinstance(value, dict) else None


def _legacy_resources(doc: Mapping[str, Any], source: str) -> tuple[list[StateResource], list[str]]:
    modules = doc.get("modules") or []
    if not isinstance(modules, list):
        raise StateError(f"{source}: modules is not a list", hint=HINT)
    found: list[StateResource] = []
    outputs: list[str] = []
    for m, mod in enumerate(modules):
        if not isinstance(mod, dict):
            raise StateError(f"{source}: modules[{m}] is not an object", hint=HINT)
        path = mod.get("path")
        if not isinstance(path, list) or not path or not all(isinstance(p, str) for p in path):
            raise StateError(f"{source}: modules[{m}] has no path", hint=HINT)
        # path is ["root", "child", "grandchild"]; addresses spell it module.child.module.grandchild.
        module = ".".join(f"module.{p}" for p in path[1:]) or None
        if module is None and isinstance(mod.get("outputs"), dict):
            outputs.extend(mod["outputs"])
        resources = mod.get("resources") or {}
        if not isinstance(resources, dict):
            raise StateError(f"{source}: modules[{m}].resources is not an object", hint=HINT)
        for key, res in resources.items():
            match = _LEGACY_KEY.match(key)
            if match is None or not isinstance(res, dict):
                raise StateError(f"{source}: modules[{m}] has a resource key that is not type.name[.N]", hint=HINT)
            mode = "data" if match["data"] else "managed"
            index = int(match["index"]) if match["index"] is not None else None
            primary = res.get("primary")
            provider = res.get("provider")
            found.append(StateResource(
                address=instance_address(module, mode, match["type"], match["name"], index),
                mode=mode, type=match["type"], name=match["name"], module=module, index=index,
                # Pre-0.12 states often omit the provider; it was implied by the type's prefix.
                provider=provider if isinstance(provider, str) and provider else match["type"].split("_", 1)[0],
                tainted=isinstance(primary, dict) and primary.get("tainted") is True,
            ))
    return found, outputs


def _show_json_resources(module: Mapping[str, Any], source: str) -> Iterator[StateResource]:
    module_addr = module.get("address") if isinstance(module.get("address"), str) else None
    for res in module.get("resources") or []:
        if not isinstance(res, dict):
            raise StateError(f"{source}: values has a resource that is not an object", hint=HINT)
        where = f"resource {res.get('address', '?')}"
        mode = _str_field(res, "mode", where, source)
        rtype = _str_field(res, "type", where, source)
        name = _str_field(res, "name", where, source)
        index = _index(res.get("index"), where, source)
        address = res.get("address")
        deposed = res.get("deposed_key")
        provider = res.get("provider_name")
        yield StateResource(
            address=address if isinstance(address, str) else instance_address(module_addr, mode, rtype, name, index),
            mode=mode, type=rtype, name=name, module=module_addr, index=index,
            provider=provider if isinstance(provider, str) else "",
            deposed=deposed if isinstance(deposed, str) else None,
            tainted=res.get("tainted") is True,
            attributes=_attributes(res.get("values")),
            sensitive_paths=tuple(_show_json_sensitive(res.get("sensitive_values"))),
        )
    for child in module.get("child_modules") or []:
        if isinstance(child, dict):
            yield from _show_json_resources(child, source)


def _opt(doc: Mapping[str, Any], key: str, kind: type) -> Any:
    value = doc.get(key)
    return value if isinstance(value, kind) and not isinstance(value, bool) else None


def _state(doc: Any, sha256: str, source: str) -> State:
    kind = sniff(doc)
    if kind == "encrypted-state":
        raise StateError(f"{source}: state is encrypted (OpenTofu state encryption); tfaudit needs the decrypted state",
                         hint="pass the output of 'tofu state pull' run with the encryption configuration available")
    if kind == "state-show-json":
        values = doc.get("values")
        values = values if isinstance(values, dict) else {}
        root = values.get("root_module")
        root = root if isinstance(root, dict) else {}
        outputs = values.get("outputs")
        outputs = outputs if isinstance(outputs, dict) else {}
        return State(
            version=None, terraform_version=_opt(doc, "terraform_version", str), serial=None, lineage=None,
            sha256=sha256, resources=tuple(_show_json_resources(root, source)),
            outputs=tuple(sorted(outputs)), format_version=_opt(doc, "format_version", str),
        )
    if kind != "state":
        raise StateError(f"{source}: looks like {DESCRIPTIONS[kind]}, not a state", hint=HINT)

    version = doc["version"]
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise StateError(f"{source}: state version is not a positive whole number", hint=HINT)
    if version not in SUPPORTED_VERSIONS:
        raise StateError(f"{source}: unsupported state format version {version}",
                         hint="it was written by a terraform or tofu newer than tfaudit supports; upgrade tfaudit")
    if version == 4:
        resources = list(_v4_resources(doc, source))
        outputs = doc.get("outputs") or {}
        output_names = list(outputs) if isinstance(outputs, dict) else []
    else:
        resources, output_names = _legacy_resources(doc, source)
    return State(
        version=version,
        terraform_version=_opt(doc, "terraform_version", str),
        serial=_opt(doc, "serial", int),
        lineage=_opt(doc, "lineage", str),
        sha256=sha256,
        resources=tuple(resources),
        outputs=tuple(sorted(output_names)),
        checks=_checks(doc.get("check_results")) if version == 4 else (),
    )


def parse_state(data: bytes | str, *, source: str = "<state>") -> State | None:
    """The state in `data`; None for empty input (`terraform state pull` with no state)."""
    raw = data.encode("utf-8") if isinstance(data, str) else data
    text = decode_text(raw, source=source, error=StateError, hint=HINT)
    if not text.strip():
        return None
    docs = decode_documents(text, source=source, error=StateError, hint=HINT)
    if len(docs) != 1:
        raise StateError(f"{source}: holds {len(docs)} concatenated JSON documents, expected one state", hint=HINT)
    return _state(docs[0], hashlib.sha256(raw).hexdigest(), source)


def load_state(path: str | Path) -> State | None:
    try:
        data = Path(path).read_bytes()
    except OSError as e:
        raise StateError(f"{path}: cannot read ({e.strerror or e.__class__.__name__})", hint=HINT) from e
    return parse_state(data, source=str(path))


__all__ = ["SUPPORTED_VERSIONS", "State", "StateResource", "load_state", "parse_state"]
