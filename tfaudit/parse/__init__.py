"""Text in, typed values out: plans, apply streams and states from terraform/tofu."""

from __future__ import annotations

from tfaudit.parse.events import (
    ApplyTracker,
    ChangeSummary,
    Diagnostic,
    Event,
    OutcomeStatus,
    ResourceOutcome,
    event_from_message,
    load_stream,
    parse_event_line,
    parse_stream,
)
from tfaudit.parse.plan import (
    KNOWN_ACTIONS,
    ChangeAction,
    OutputChange,
    Plan,
    ResourceChange,
    load_plan,
    load_plans,
    parse_plan,
    parse_plans,
)
from tfaudit.parse.state import SUPPORTED_VERSIONS, State, StateResource, load_state, parse_state

__all__ = [
    "KNOWN_ACTIONS",
    "SUPPORTED_VERSIONS",
    "ApplyTracker",
    "ChangeAction",
    "ChangeSummary",
    "Diagnostic",
    "Event",
    "OutcomeStatus",
    "OutputChange",
    "Plan",
    "ResourceChange",
    "ResourceOutcome",
    "State",
    "StateResource",
    "event_from_message",
    "load_plan",
    "load_plans",
    "load_state",
    "load_stream",
    "parse_event_line",
    "parse_plan",
    "parse_plans",
    "parse_state",
    "parse_stream",
]
