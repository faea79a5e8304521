"""Values terraform marks sensitive, changed."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

from tfaudit.analysis.rules._values import Hit
from tfaudit.parse.plan import ResourceChange


def _has_true(mask: Any) -> bool:
    t = type(mask)
    if t is dict:
        values: Iterable[Any] = mask.values()
    elif t is list:
        values = mask
    else:
        return mask is True
    for v in values:
        if v is True or ((type(v) is dict or type(v) is list) and v and _has_true(v)):
            return True
    return False


Step = str | int


def _sensitive_steps(mask: Any, prefix: tuple[Step, ...], out: list[tuple[Step, ...]]) -> None:
    if mask is True:
        out.append(prefix)
    elif type(mask) is dict:
        for k, v in mask.items():
            if v is True or (v and _has_true(v)):
                _sensitive_steps(v, (*prefix, k), out)
    elif type(mask) is list:
        for i, v in enumerate(mask):
            if v is True or (v and _has_true(v)):
                _sensitive_steps(v, (*prefix, i), out)


def _at(value: Any, steps: tuple[Step, ...]) -> Any:
    for step in steps:
        if type(step) is int:
            value = value[step] if type(value) is list and step < len(value) else None
        else:
            value = value.get(step) if type(value) is dict else None
    return value


def _path_text(steps: tuple[Step, ...]) -> str:
    out = ""
    for s in steps:
        out += f"[{s}]" if type(s) is int else (f".{s}" if out else str(s))
    return out or "(whole object)"


def check_sensitive(ch: ResourceChange) -> Iterator[Hit]:
    if ch.before is None or ch.after is None:
        return
    before_m, after_m = ch.before_sensitive, ch.after_sensitive
    if not ((before_m and _has_true(before_m)) or (after_m and _has_true(after_m))):
        return
    paths: list[tuple[Step, ...]] = []
    _sensitive_steps(before_m, (), paths)
    _sensitive_steps(after_m, (), paths)
    changed = [_path_text(p) for p in dict.fromkeys(paths)
               if _at(ch.before, p) != _at(ch.after, p) or _at(ch.after_unknown, p) is True]
    if changed:
        more = f" and {len(changed) - 5} more" if len(changed) > 5 else ""
        yield "sensitive.changed", "sensitive value changes at " + ", ".join(changed[:5]) + more + " (values hidden)"
