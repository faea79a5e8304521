"""terraform's machine-readable UI stream (`apply -json`, `plan -json`) into events,
and an ApplyTracker that turns those events into a per-resource outcome.

The stream is one JSON object per line (ui 1.0-1.2; OpenTofu writes the same with
`@module: tofu.ui`). terraform may still print plain text, e.g. on a crash, so a
line that is not JSON becomes a `text` event instead of an error. terraform's own
equivalence tests store the messages as one JSON array; that form is read too.

Replacements arrive as two operations on one address (delete then create, or
create then delete of the deposed object); a single operation with action
"replace" is handled the same way. Neither terraform 1.11 nor OpenTofu 1.8 put a
deposed key in hook messages; if a `hook.deposed` appears it is kept on the event.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from types import MappingProxyType
from typing import Any

from tfaudit.errors import StreamError
from tfaudit.parse._jsonio import DESCRIPTIONS, decode_documents, decode_text, sniff

HINT = "pass the stdout of 'terraform apply -json'"

_APPLY_START = "apply_start"
_APPLY_DONE = frozenset({"apply_complete", "apply_errored"})
# what terraform 1.11 says of an assertion with its check rule attached; "Error message refers to
# sensitive values" has none, so `terraform apply` shows the plan's as well as the apply's
_CHECK_RULE_SUMMARIES = frozenset({"Check block assertion failed", "Check block assertion known after apply",
                                   "Error message refers to ephemeral values"})


@dataclass(frozen=True)
class Diagnostic:
    severity: str  # "error" | "warning"
    summary: str
    detail: str
    address: str | None  # the resource instance the diagnostic is about, when terraform knows it
    filename: str | None  # range.filename
    line: int | None  # range.start.line
    context: str | None = None  # snippet.context, e.g. 'resource "aws_s3_bucket" "logs"'

    @property
    def is_error(self) -> bool:
        return self.severity == "error"

    @property
    def checked_again(self) -> bool:
        """A check block's result, which the apply evaluates again: terraform marks these with the
        check rule they come from, and `terraform apply` without a prompt drops the plan's. In a
        check block (snippet context `check "NAME"`): every diagnostic of its scoped data source
        (the one thing there with an address), turned into a warning, and the assertions' own."""
        if self.is_error or not (self.context or "").startswith("check "):
            return False
        return bool(self.address) or self.summary in _CHECK_RULE_SUMMARIES


@dataclass(frozen=True)
class Event:
    type: str  # the message type, or "text" for a line that is not JSON
    level: str
    message: str
    timestamp: str | None
    address: str | None  # hook/change resource addr, or diagnostic.address
    action: str | None  # hook or change action: create, update, delete, replace, read, noop, ...
    elapsed_seconds: float | None
    id_key: str | None
    id_value: str | None
    diagnostic: Diagnostic | None
    raw: Mapping[str, Any]
    deposed: str | None = None
    provisioner: str | None = None


class OutcomeStatus(StrEnum):
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    NOT_ATTEMPTED = "not_attempted"
    STARTED = "started"  # started but neither completed nor errored, e.g. interrupted


@dataclass(frozen=True)
class Operation:
    """One operation terraform started (or finished) on an address, in stream order."""

    action: str  # create, update, delete, replace, ...
    done: bool  # apply_complete or apply_errored arrived
    errored: bool
    elapsed_seconds: float | None = None
    id_value: str | None = None  # the object id the start or the completion named


@dataclass(frozen=True)
class ResourceOutcome:
    address: str
    status: OutcomeStatus
    planned_action: str | None  # from planned_change, when the stream has one
    actions: tuple[str, ...]  # operations started, in order, e.g. ("delete", "create")
    diagnostics: tuple[Diagnostic, ...]  # every diagnostic naming this address
    elapsed_seconds: float | None  # summed over finished operations
    id_key: str | None
    id_value: str | None
    provisioner_errors: tuple[str, ...]  # provisioners that errored (fatal or on_failure = continue)
    operations: tuple[Operation, ...] = ()

    @property
    def errors(self) -> tuple[Diagnostic, ...]:
        return tuple(d for d in self.diagnostics if d.is_error)


@dataclass(frozen=True)
class ChangeSummary:
    operation: str  # "plan" | "apply" | "destroy"
    add: int
    change: int
    remove: int
    imports: int
    raw: Mapping[str, Any]


def _str(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _int(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def _diagnostic(obj: Any) -> Diagnostic | None:
    if not isinstance(obj, dict):
        return None
    rng = obj.get("range")
    rng = rng if isinstance(rng, dict) else {}
    start = rng.get("start")
    line = start.get("line") if isinstance(start, dict) else None
    snippet = obj.get("snippet")
    return Diagnostic(
        # Fail closed: a diagnostic that does not say how bad it is counts as an error.
        severity=_str(obj.get("severity")) or "error",
        summary=_str(obj.get("summary")) or "",
        detail=_str(obj.get("detail")) or "",
        address=_str(obj.get("address")) or None,
        filename=_str(rng.get("filename")),
        line=line if isinstance(line, int) and not isinstance(line, bool) else None,
        context=_str(snippet.get("context")) if isinstance(snippet, dict) else None,
    )


def _resource_addr(container: Any) -> str | None:
    if not isinstance(container, dict):
        return None
    resource = container.get("resource")
    return _str(resource.get("addr")) if isinstance(resource, dict) else None


def event_from_message(obj: Mapping[str, Any]) -> Event:
    """An Event from one decoded UI message."""
    hook = obj.get("hook")
    hook = hook if isinstance(hook, dict) else {}
    change = obj.get("change")
    change = change if isinstance(change, dict) else {}
    diagnostic = _diagnostic(obj.get("diagnostic"))

    address = _resource_addr(hook) or _resource_addr(change)
    if address is None and isinstance(obj.get("deferred"), dict):
        address = _resource_addr(obj["deferred"].get("resource_change"))
    if address is None and diagnostic is not None:
        address = diagnostic.address
    action = _str(hook.get("action")) or _str(change.get("action"))
    elapsed = hook.get("elapsed_seconds")
    resource = hook.get("resource")
    deposed = _str(hook.get("deposed")) or (_str(resource.get("deposed")) if isinstance(resource, dict) else None)
    return Event(
        type=_str(obj.get("type")) or "unknown",
        level=_str(obj.get("@level")) or "",
        message=_str(obj.get("@message")) or "",
        timestamp=_str(obj.get("@timestamp")),
        address=address,
        action=action,
        elapsed_seconds=(elapsed if type(elapsed) is int else float(elapsed))  # terraform's whole seconds stay whole
        if isinstance(elapsed, (int, float)) and not isinstance(elapsed, bool) else None,
        id_key=_str(hook.get("id_key")),
        id_value=_str(hook.get("id_value")),
        diagnostic=diagnostic,
        raw=MappingProxyType(dict(obj)),
        deposed=deposed,
        provisioner=_str(hook.get("provisioner")),
    )


def _text_event(line: str) -> Event:
    return Event(type="text", level="", message=line, timestamp=None, address=None, action=None,
                 elapsed_seconds=None, id_key=None, id_value=None, diagnostic=None, raw=MappingProxyType({}))


def parse_event_line(line: bytes | str) -> Event | None:
    """One stream line as an Event; None for a blank line, a `text` event for non-JSON."""
    if isinstance(line, bytes):
        # A stray undecodable byte must not lose the rest of the audit trail.
        line = line.decode("utf-8", "replace")
    line = line.lstrip("\ufeff").rstrip("\r\n")
    if not line.strip():
        return None
    try:
        obj = json.loads(line)
    except ValueError:
        return _text_event(line)
    if not isinstance(obj, dict):
        return _text_event(line)
    return event_from_message(obj)


def parse_stream(data: bytes | str, *, source: str = "<stream>") -> list[Event]:
    """Every event in a stream. Empty input is an empty list.

    Raises StreamError when there is text but not one UI message in it (the wrong
    file, or terraform run without -json).
    """
    text = decode_text(data, source=source, error=StreamError, hint=HINT)
    events: list[Event] | None = None
    stripped = text.lstrip()
    if stripped.startswith("["):
        try:
            array = json.loads(stripped)
        except ValueError:
            array = None  # not the array form; read it line by line
        if isinstance(array, list) and all(isinstance(m, dict) for m in array):
            events = [event_from_message(m) for m in array]
    if events is None:
        events = [e for e in map(parse_event_line, text.splitlines()) if e is not None]
    if events and not any(e.type not in ("text", "unknown") for e in events):
        raise StreamError(f"{source}: has no machine-readable UI messages; it looks like {_describe(text, source)}",
                          hint=HINT)
    return events


def _describe(text: str, source: str) -> str:
    try:
        docs = decode_documents(text, source=source, error=StreamError, hint=HINT)
    except StreamError:
        return "plain text (was terraform run without -json?)"
    return DESCRIPTIONS[sniff(docs[0])]


def load_stream(path: str | Path) -> list[Event]:
    """The events in a saved stream, ready to feed to an ApplyTracker."""
    try:
        data = Path(path).read_bytes()
    except OSError as e:
        raise StreamError(f"{path}: cannot read ({e.strerror or e.__class__.__name__})", hint=HINT) from e
    return parse_stream(data, source=str(path))


@dataclass
class _Operation:
    action: str
    done: bool = False
    errored: bool = False
    elapsed: float | None = None
    id_value: str | None = None


@dataclass
class _Track:
    planned_action: str | None = None
    operations: list[_Operation] = field(default_factory=list)
    diagnostics: list[Diagnostic] = field(default_factory=list)
    elapsed: float | None = None
    id_key: str | None = None
    id_value: str | None = None
    provisioner_errors: list[str] = field(default_factory=list)


class ApplyTracker:
    """Feed events in stream order, then ask for each resource's outcome.

    A resource succeeded when every operation started on it completed; failed when
    one errored or an error diagnostic names it (terraform sends the diagnostics
    after apply_errored); started when an operation never finished (interrupted);
    not_attempted when nothing started. A provisioner error alone does not fail a
    resource: with `on_failure = continue` terraform reports it and carries on.
    """

    def __init__(self, events: Iterable[Event] = ()) -> None:
        self._tracks: dict[str, _Track] = {}
        self._diagnostics: list[Diagnostic] = []
        self._text: list[str] = []
        self._summary: ChangeSummary | None = None
        self.terraform_version: str | None = None
        self.ui_version: str | None = None
        for event in events:
            self.feed(event)

    def _track(self, address: str) -> _Track:
        return self._tracks.setdefault(address, _Track())

    def feed(self, event: Event) -> None:
        kind = event.type
        if kind == "version":
            # OpenTofu names the key "tofu".
            self.terraform_version = _str(event.raw.get("terraform")) or _str(event.raw.get("tofu"))
            self.ui_version = _str(event.raw.get("ui"))
        elif kind == "text":
            self._text.append(event.message)
        elif kind == "change_summary":
            changes = event.raw.get("changes")
            if isinstance(changes, dict):
                self._summary = ChangeSummary(
                    operation=_str(changes.get("operation")) or "",
                    add=_int(changes.get("add")), change=_int(changes.get("change")),
                    remove=_int(changes.get("remove")), imports=_int(changes.get("import")),
                    raw=MappingProxyType(dict(changes)),
                )
        elif kind == "diagnostic" and event.diagnostic is not None:
            self._diagnostics.append(event.diagnostic)
            if event.diagnostic.address:
                self._track(event.diagnostic.address).diagnostics.append(event.diagnostic)
        elif event.address is None:
            return
        elif kind == "planned_change":
            self._track(event.address).planned_action = event.action
        elif kind == _APPLY_START:
            track = self._track(event.address)
            track.operations.append(_Operation(event.action or "", id_value=event.id_value))
            track.id_key, track.id_value = event.id_key or track.id_key, event.id_value or track.id_value
        elif kind in _APPLY_DONE:
            track = self._track(event.address)
            op = self._open_operation(track, event.action)
            op.done, op.errored = True, kind == "apply_errored"
            if event.elapsed_seconds is not None:
                track.elapsed = (track.elapsed or 0) + event.elapsed_seconds
                op.elapsed = event.elapsed_seconds
            if event.id_value:
                track.id_key, track.id_value = event.id_key, event.id_value
                op.id_value = event.id_value
        elif kind == "provision_errored":
            self._track(event.address).provisioner_errors.append(event.provisioner or "")

    @staticmethod
    def _open_operation(track: _Track, action: str | None) -> _Operation:
        open_ops = [op for op in track.operations if not op.done]
        for op in reversed(open_ops):
            if op.action == action:
                return op
        if open_ops:
            return open_ops[-1]
        # A completion without its start (a stream cut at the front): count it anyway.
        op = _Operation(action or "")
        track.operations.append(op)
        return op

    def outcome(self, address: str) -> ResourceOutcome:
        track = self._tracks.get(address, _Track())
        ops = track.operations
        if any(op.errored for op in ops) or any(d.is_error for d in track.diagnostics):
            status = OutcomeStatus.FAILED
        elif any(not op.done for op in ops):
            status = OutcomeStatus.STARTED
        elif ops:
            status = OutcomeStatus.SUCCEEDED
        else:
            status = OutcomeStatus.NOT_ATTEMPTED
        return ResourceOutcome(
            address=address,
            status=status,
            planned_action=track.planned_action,
            actions=tuple(op.action for op in ops),
            diagnostics=tuple(track.diagnostics),
            elapsed_seconds=track.elapsed,
            id_key=track.id_key,
            id_value=track.id_value,
            provisioner_errors=tuple(track.provisioner_errors),
            operations=tuple(Operation(op.action, op.done, op.errored, op.elapsed, op.id_value) for op in ops),
        )

    def outcomes(self) -> dict[str, ResourceOutcome]:
        """Outcomes of every address the stream mentions (planned, applied or diagnosed)."""
        return {address: self.outcome(address) for address in self._tracks}

    @property
    def change_summary(self) -> ChangeSummary | None:
        """The last change summary: the apply's, when the stream has both plan and apply."""
        return self._summary

    @property
    def diagnostics(self) -> tuple[Diagnostic, ...]:
        return tuple(self._diagnostics)

    @property
    def errors_without_address(self) -> tuple[Diagnostic, ...]:
        return tuple(d for d in self._diagnostics if d.is_error and not d.address)

    @property
    def text_lines(self) -> tuple[str, ...]:
        """Lines that were not JSON (terraform crash output and the like)."""
        return tuple(self._text)


__all__ = [
    "ApplyTracker", "ChangeSummary", "Diagnostic", "Event", "Operation", "OutcomeStatus", "ResourceOutcome",
    "event_from_message", "load_stream", "parse_event_line", "parse_stream",
]
