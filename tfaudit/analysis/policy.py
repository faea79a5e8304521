"""Rules as code: custom rules, built-in overrides and waivers from `.tfaudit.hcl`.

    rule "no-prod-db-delete" {                 # custom rule; the label is its id
      message        = "production databases are never deleted by terraform"
      severity       = "critical"              # info | low | medium | high | critical (default medium)
      effect         = "deny"                  # warn (default) | deny | alert
      resource_types = ["aws_db_instance", "aws_rds_*"]   # globs; any of them
      addresses      = ["module.prod.*"]                  # globs; any of them
      actions        = ["delete", "replace"]              # create update delete replace forget import move
      condition {                              # every condition must hold
        path   = "tags.env"                    # a.b[0].c, a[*].b, tags["Name"]
        equals = "prod"                        # or contains = ..., or changed = true/false
        side   = "before"                      # after (default; before for deletes) | before | any
      }
    }
    rules {
      disable  = ["destroy.replace-cbd"]
      severity = { "destroy.delete" = "high" }
      effect   = { "iam.admin-policy-attached" = "deny" }
      fail_on  = "critical"                    # gate for tfaudit apply/plan (like --fail-on)
    }
    waiver {
      rule    = "network.world-ingress-web"
      address = "aws_security_group.public_lb"  # glob
      reason  = "public load balancer, reviewed in SEC-123"
      expires = "2027-03-31"                    # an expired waiver stops working and is a finding
    }

Parsers here are registered in tfaudit.config.SECTIONS; errors name the rule/waiver block.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from tfaudit._hcl import is_block, strip_marker
from tfaudit.analysis.rules.catalog import RULES
from tfaudit.analysis.model import Effect, RuleInfo, Severity
from tfaudit.config import BlockContext, check_keys, get_str, get_str_list, labelled_blocks, single_block
from tfaudit.errors import ConfigError
from tfaudit.parse.plan import ResourceChange

ACTION_WORDS = ("create", "update", "delete", "replace", "forget", "import", "move", "read")
_RULE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_SIDES = ("after", "before", "any")

WILDCARD = object()
PathStep = Any  # str key, int index, or WILDCARD


# --- attribute paths --------------------------------------------------------------------------
_STEP = re.compile(r'\.?(?P<name>[A-Za-z_][A-Za-z0-9_-]*|\*)|\[(?P<index>\d+|\*)\]|\["(?P<key>(?:[^"\\]|\\.)*)"\]')


def parse_path(text: str) -> tuple[PathStep, ...]:
    """`a.b[0].c`, `ingress[*].cidr_blocks`, `tags["Name"]`, `tags.*` into steps; ValueError if malformed."""
    steps: list[PathStep] = []
    pos = 0
    while pos < len(text):
        m = _STEP.match(text, pos)
        if m is None or m.end() == pos or (pos == 0 and text.startswith(".")):
            raise ValueError(f"cannot read {text!r} at character {pos + 1}")
        if m.group("name") is not None:
            steps.append(WILDCARD if m.group("name") == "*" else m.group("name"))
        elif m.group("index") is not None:
            steps.append(WILDCARD if m.group("index") == "*" else int(m.group("index")))
        else:
            steps.append(m.group("key").replace('\\"', '"').replace("\\\\", "\\"))
        pos = m.end()
    if not steps:
        raise ValueError("is empty")
    return tuple(steps)


def values_at(value: Any, steps: Sequence[PathStep]) -> list[Any]:
    """Every value at the path (a wildcard fans out over list items and map values)."""
    current = [value]
    for step in steps:
        nxt: list[Any] = []
        for v in current:
            if step is WILDCARD:
                if isinstance(v, list):
                    nxt.extend(v)
                elif isinstance(v, Mapping):
                    nxt.extend(v.values())
            elif isinstance(step, int):
                if isinstance(v, list) and step < len(v):
                    nxt.append(v[step])
            elif isinstance(v, Mapping) and step in v:
                nxt.append(v[step])
            elif isinstance(v, list) and len(v) == 1 and isinstance(v[0], Mapping) and step in v[0]:
                nxt.append(v[0][step])  # a nested block of one: `versioning.enabled` == `versioning[0].enabled`
        current = nxt
    return [v for v in current if v is not None]


def _norm(v: Any) -> str | None:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float, str)):
        return str(v)
    return None


def same(a: Any, b: Any) -> bool:
    if a == b and type(a) is type(b):
        return True
    na, nb = _norm(a), _norm(b)
    return na is not None and na == nb


# --- custom rules ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Condition:
    path: str
    steps: tuple[PathStep, ...]
    op: str  # equals | contains | changed
    value: Any
    side: str  # after | before | any

    def holds(self, ch: ResourceChange) -> bool:
        if self.op == "changed":
            before = values_at(ch.before, self.steps)
            after = values_at(ch.after, self.steps)
            unknown = any(u is True for u in values_at(ch.after_unknown, self.steps))
            differs = unknown or len(before) != len(after) or not all(same(b, a) for b, a in zip(before, after))
            return differs is bool(self.value)
        if self.side == "any":
            sides = [ch.before, ch.after]
        elif self.side == "before":
            sides = [ch.before]
        else:
            sides = [ch.after if ch.after is not None else ch.before]
        return any(self._matches(v) for s in sides for v in values_at(s, self.steps))

    def _matches(self, v: Any) -> bool:
        if self.op == "equals":
            return same(v, self.value)
        if isinstance(v, list):
            return any(same(x, self.value) for x in v)
        if isinstance(v, str):
            return isinstance(self.value, str) and self.value in v
        if isinstance(v, Mapping):
            return isinstance(self.value, str) and self.value in v
        return False


@dataclass(frozen=True)
class CustomRule:
    info: RuleInfo
    message: str
    types: re.Pattern[str] | None
    addresses: re.Pattern[str] | None
    actions: frozenset[str] | None
    conditions: tuple[Condition, ...]

    @property
    def id(self) -> str:
        return self.info.id

    def matches(self, ch: ResourceChange) -> bool:
        if self.actions is not None and str(ch.action) not in self.actions:
            return False
        if self.types is not None and self.types.match(ch.type) is None:
            return False
        if self.addresses is not None and self.addresses.match(ch.address) is None:
            return False
        return all(c.holds(ch) for c in self.conditions)


def glob_regex(pattern: str) -> str:
    """`*` matches any run of characters (dots and brackets too), `?` one; everything else is literal.

    Not fnmatch: its `[...]` classes would turn `aws_instance.web[0]` into a character class.
    """
    return "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)


def _globs(patterns: Sequence[str]) -> re.Pattern[str] | None:
    if not patterns:
        return None
    return re.compile("(?:" + "|".join(glob_regex(p) for p in patterns) + r")\Z", re.DOTALL)


def _severity(ctx: BlockContext, value: Any, what: str, label: str | None) -> Severity:
    try:
        return Severity(value)
    except ValueError:
        raise ctx.error(f"{what} must be one of {', '.join(s.value for s in Severity)}, not {value!r}",
                        label=label) from None


def _effect(ctx: BlockContext, value: Any, what: str, label: str | None) -> Effect:
    try:
        return Effect(value)
    except ValueError:
        raise ctx.error(f"{what} must be one of {', '.join(e.value for e in Effect)}, not {value!r}",
                        label=label) from None


def _condition(ctx: BlockContext, label: str, raw: Any, n: int) -> Condition:
    where = f"condition {n + 1}"
    if not is_block(raw):
        raise ctx.error(f"{where} must be a block: condition {{ path = ..., equals = ... }}", label=label)
    body = strip_marker(raw)
    check_keys(ctx, body, {"path", "equals", "contains", "changed", "side"}, label=label)
    path = get_str(ctx, body, "path", label=label)
    if not path:
        raise ctx.error(f"{where} needs path (e.g. path = \"tags.env\")", label=label)
    try:
        steps = parse_path(path)
    except ValueError as e:
        raise ctx.error(f"{where}: path {e}", label=label, hint="paths look like a.b[0].c, a[*].b or tags[\"Name\"]") from None
    ops = [k for k in ("equals", "contains", "changed") if k in body]
    if len(ops) != 1:
        raise ctx.error(f"{where} needs exactly one of equals, contains, changed", label=label)
    op = ops[0]
    value = body[op]
    if op == "changed" and not isinstance(value, bool):
        raise ctx.error(f"{where}: changed must be true or false", label=label)
    if op != "changed" and isinstance(value, (dict, list)):
        raise ctx.error(f"{where}: {op} takes a single string, number or bool", label=label)
    side = get_str(ctx, body, "side", "after", label=label) or "after"
    if side not in _SIDES:
        raise ctx.error(f"{where}: side must be one of {', '.join(_SIDES)}, not {side!r}", label=label)
    if op == "changed" and "side" in body:
        raise ctx.error(f"{where}: side does not apply to changed (it compares before with after)", label=label)
    return Condition(path, steps, op, value, side)


def parse_rules_blocks(ctx: BlockContext, entries: list[Any]) -> tuple[CustomRule, ...]:
    """`rule "<id>" { ... }` blocks (SECTIONS["rule"])."""
    out: list[CustomRule] = []
    seen: set[str] = set()
    for (label,), body in labelled_blocks(ctx, entries, 1):
        if not _RULE_ID.match(label):
            raise ctx.error("the id must be letters, digits, '.', '_' or '-'", label=label)
        if label in RULES:
            raise ctx.error("has the id of a built-in rule", label=label,
                            hint="choose another id; re-rate or disable built-ins in a rules { } block")
        if label in seen:
            raise ctx.error("is defined twice", label=label)
        seen.add(label)
        check_keys(ctx, body, {"message", "description", "severity", "effect", "resource_types", "addresses",
                               "actions", "condition"}, label=label)
        message = get_str(ctx, body, "message", label=label)
        if not message:
            raise ctx.error("needs message (what a finding says)", label=label)
        severity = _severity(ctx, body.get("severity", "medium"), "severity", label)
        effect = _effect(ctx, body.get("effect", "warn"), "effect", label)
        types = get_str_list(ctx, body, "resource_types", label=label)
        addresses = get_str_list(ctx, body, "addresses", label=label)
        actions = get_str_list(ctx, body, "actions", label=label)
        bad = [a for a in actions if a not in ACTION_WORDS]
        if bad:
            raise ctx.error(f"unknown action {bad[0]!r} (allowed: {', '.join(ACTION_WORDS)})", label=label)
        raw_conditions = body.get("condition", [])
        if not isinstance(raw_conditions, list):
            raw_conditions = [raw_conditions]
        conditions = tuple(_condition(ctx, label, c, i) for i, c in enumerate(raw_conditions))
        if not (types or addresses or actions or conditions):
            raise ctx.error("matches every change: give resource_types, addresses, actions or a condition", label=label)
        description = get_str(ctx, body, "description", label=label) or message
        info = RuleInfo(label, severity, "custom", message, description, effect, builtin=False)
        out.append(CustomRule(info, message, _globs(types), _globs(addresses),
                              frozenset(actions) if actions else None, conditions))
    return tuple(out)


# --- rules { } and waiver { } --------------------------------------------------------------------
@dataclass(frozen=True)
class RulesSettings:
    disable: frozenset[str] = frozenset()
    severity: Mapping[str, Severity] = field(default_factory=dict)
    effect: Mapping[str, Effect] = field(default_factory=dict)
    fail_on: Severity | None = None


def _builtin_id(ctx: BlockContext, rule_id: Any, what: str) -> str:
    if not isinstance(rule_id, str) or rule_id not in RULES:
        raise ctx.error(f"{what}: {rule_id!r} is not a built-in rule id",
                        hint="see the rule table in the README, or 'tfaudit analyze --list-rules'")
    return rule_id


def _rule_map(ctx: BlockContext, body: Mapping[str, Any], key: str) -> dict[str, Any]:
    raw = body.get(key, {})
    if not isinstance(raw, dict):
        raise ctx.error(f'{key} must be a map of rule id to value, e.g. {key} = {{ "destroy.delete" = ... }}')
    return {_builtin_id(ctx, rid, key): v for rid, v in raw.items()}


def parse_rules_settings(ctx: BlockContext, entries: list[Any]) -> RulesSettings:
    """`rules { disable, severity, effect, fail_on }` (SECTIONS["rules"])."""
    body = single_block(ctx, entries)
    check_keys(ctx, body, {"disable", "severity", "effect", "fail_on"})
    disable = frozenset(_builtin_id(ctx, r, "disable") for r in get_str_list(ctx, body, "disable"))
    severity = {rid: _severity(ctx, v, f'severity of "{rid}"', None) for rid, v in _rule_map(ctx, body, "severity").items()}
    effect = {rid: _effect(ctx, v, f'effect of "{rid}"', None) for rid, v in _rule_map(ctx, body, "effect").items()}
    fail_on = body.get("fail_on")
    gate = None
    if fail_on is not None:
        if fail_on not in ("low", "medium", "high", "critical"):
            raise ctx.error(f"fail_on must be low, medium, high or critical, not {fail_on!r}")
        gate = Severity(fail_on)
    return RulesSettings(disable, severity, effect, gate)


@dataclass(frozen=True)
class Waiver:
    rule: str
    address: str
    pattern: re.Pattern[str]
    reason: str
    expires: date

    def covers(self, rule: str, address: str | None) -> bool:
        return rule == self.rule and address is not None and self.pattern.match(address) is not None


def parse_waivers(ctx: BlockContext, entries: list[Any]) -> tuple[Waiver, ...]:
    """`waiver { rule, address, reason, expires }` blocks (SECTIONS["waiver"])."""
    out: list[Waiver] = []
    for n, entry in enumerate(entries, start=1):
        if not is_block(entry):
            raise ctx.error(f"waiver {n} must be a block: waiver {{ rule = ..., address = ..., reason = ..., expires = ... }}")
        body = strip_marker(entry)
        label = f"#{n}"
        check_keys(ctx, body, {"rule", "address", "reason", "expires"}, label=label)
        rule = get_str(ctx, body, "rule", label=label)
        address = get_str(ctx, body, "address", label=label)
        reason = get_str(ctx, body, "reason", label=label)
        expires = get_str(ctx, body, "expires", label=label)
        for key, v in (("rule", rule), ("address", address), ("reason", reason), ("expires", expires)):
            if not v or not str(v).strip():
                raise ctx.error(f"needs {key}", label=label,
                                hint="a waiver names the rule, the address (glob), why, and until when (YYYY-MM-DD)")
        assert rule and address and reason and expires
        if not _DATE.match(expires):
            raise ctx.error(f"expires must be a date like 2027-03-31, not {expires!r}", label=label)
        try:
            until = date.fromisoformat(expires)
        except ValueError:
            raise ctx.error(f"expires {expires!r} is not a real date", label=label) from None
        out.append(Waiver(rule, address, re.compile(glob_regex(address) + r"\Z", re.DOTALL), reason.strip(), until))
    return tuple(out)


# --- all of it together -------------------------------------------------------------------------
@dataclass(frozen=True)
class Policy:
    custom: tuple[CustomRule, ...] = ()
    settings: RulesSettings = RulesSettings()
    waivers: tuple[Waiver, ...] = ()

    @classmethod
    def from_config(cls, cfg: Any) -> Policy:
        custom = tuple(cfg.section("rule", ()) or ())
        settings = cfg.section("rules") or RulesSettings()
        waivers = tuple(cfg.section("waiver", ()) or ())
        known = set(RULES) | {c.id for c in custom}
        for n, w in enumerate(waivers, start=1):
            if w.rule not in known:
                raise ConfigError(f'{cfg.path}: block waiver "#{n}": rule {w.rule!r} is neither a built-in nor a custom rule id',
                                  hint="check the id against the README's rule table or your rule blocks")
        return cls(custom, settings, waivers)

    def rule_info(self) -> dict[str, RuleInfo]:
        """Every rule as it applies here: built-ins with overrides, then the custom rules."""
        out: dict[str, RuleInfo] = {}
        s = self.settings
        for rid, info in RULES.items():
            if rid in s.disable:
                continue
            sev = s.severity.get(rid, info.severity)
            eff = s.effect.get(rid, info.effect)
            out[rid] = info if (sev, eff) == (info.severity, info.effect) else RuleInfo(
                rid, sev, info.category, info.title, info.why, eff)
        for c in self.custom:
            out[c.id] = c.info
        return out
