"""Reading plan values the way every rule needs: tolerant of lists-of-one, unknowns and nulls."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import Any

from tfaudit.parse.plan import ResourceChange

Hit = tuple[str, str]  # (rule id, message)
Check = Callable[[ResourceChange], Iterator[Hit]]


def _get(obj: Any, key: str) -> Any:
    return obj.get(key) if isinstance(obj, dict) else None


def _first(obj: Any, key: str) -> Any:
    """A nested block (a list of one object in the plan) or an object attribute."""
    v = _get(obj, key)
    if isinstance(v, list):
        return v[0] if v and isinstance(v[0], dict) else None
    return v if isinstance(v, dict) else None


def _blocks(obj: Any, key: str) -> list[Mapping[str, Any]]:
    v = _get(obj, key)
    if isinstance(v, list):
        return [b for b in v if isinstance(b, dict)]
    return [v] if isinstance(v, dict) else []


def _strs(v: Any) -> list[str]:
    if isinstance(v, str):
        return [v]
    if isinstance(v, list):
        return [x for x in v if isinstance(x, str)]
    return []


def _is_delete(ch: ResourceChange) -> bool:
    return "delete" in ch.actions


def _delete_first(ch: ResourceChange) -> bool:
    return ch.actions in (("delete",), ("delete", "create"))
