"""Redaction: applied to every value before anything is written, logged or sent.

Three layers, strongest first:
1. terraform's own sensitivity masks (`before_sensitive`/`after_sensitive`, sensitive
   variables and outputs): the value is replaced by SENSITIVE;
2. attribute names that look like secrets (password, token, private_key, ...; the
   config can add more): the value is replaced by REDACTED;
3. values that look like credentials wherever they appear (AWS access key ids, PEM
   private keys, well-known token formats), and every sensitive value seen in this
   run, scrubbed out of free text such as terraform's error messages.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

SENSITIVE = "(sensitive)"
REDACTED = "(redacted)"
UNKNOWN = "(known after apply)"

DEFAULT_NAME_PATTERNS: tuple[str, ...] = (
    r"passw(or)?d",
    r"passphrase",
    r"secret",
    r"token",
    r"private_?key",
    r"api_?key",
    r"access_?key",
    r"secret_?key",
    r"credential",
    r"connection_?string",
    r"client_?secret",
    r"auth_?key",
    r"sas_?key",
    r"^pwd$",
)

DEFAULT_VALUE_PATTERNS: tuple[str, ...] = (
    r"\b(?:AKIA|ASIA|AIDA|AROA)[0-9A-Z]{16}\b",  # AWS access key ids
    # AWS secret access keys and API-key-like 40-character base64 strings: mixed case plus a
    # digit or / or +, so hex digests (git shas) and ordinary words are left alone.
    r"(?<![A-Za-z0-9/+])(?=[A-Za-z0-9/+]*[A-Z])(?=[A-Za-z0-9/+]*[a-z])(?=[A-Za-z0-9/+]*[0-9/+])"
    r"[A-Za-z0-9/+]{40}(?![A-Za-z0-9/+=])",
    r"-----BEGIN [A-Z0-9 ]*PRIVATE KEY(?: BLOCK)?-----[\s\S]*?(?:-----END [A-Z0-9 ]*PRIVATE KEY(?: BLOCK)?-----|$)",
    r"\bgh[pousr]_[A-Za-z0-9]{36,}\b",  # GitHub tokens
    r"\bxox[abposr]-[A-Za-z0-9-]{10,}\b",  # Slack tokens
    r"\bglpat-[A-Za-z0-9_-]{20,}\b",  # GitLab tokens
    r"(?<=://)[^/\s:@]+:[^/\s@]+(?=@)",  # credentials inside URLs
    # a JSON credential's secret members, e.g. "private_key_id": "...", "client_secret": "..."
    r'"[A-Za-z0-9_-]*(?:secret|passw(?:or)?d|token|private_key|api_?key|access_?key)[A-Za-z0-9_-]*"'
    r'\s*:\s*"(?:[^"\\]|\\.)*"',
)

# A private key block split over lines: everything between these is a secret.
_BLOCK_BEGIN = re.compile(r"-----BEGIN [A-Z0-9 ]*PRIVATE KEY(?: BLOCK)?-----")
_BLOCK_END = re.compile(r"-----END [A-Z0-9 ]*PRIVATE KEY(?: BLOCK)?-----")

# Sensitive values shorter than this are not scrubbed out of free text: "1" or "true"
# would mangle every message, and such short values are not secrets worth hiding there.
_MIN_SCRUB_LEN = 6


@dataclass
class Redactor:
    """One per run. Collects the sensitive values it has masked so text can be scrubbed too."""

    name_patterns: tuple[str, ...] = DEFAULT_NAME_PATTERNS
    value_patterns: tuple[str, ...] = DEFAULT_VALUE_PATTERNS
    _known: set[str] = field(default_factory=set, repr=False)
    _longest_first: list[str] = field(default_factory=list, repr=False, compare=False)  # _known, longest first
    _sorted_at: int = field(default=-1, repr=False, compare=False)

    def __post_init__(self) -> None:
        self._name_re = re.compile("|".join(f"(?:{p})" for p in self.name_patterns), re.IGNORECASE)
        self._value_re = re.compile("|".join(f"(?:{p})" for p in self.value_patterns))

    @classmethod
    def with_additions(cls, names: Iterable[str] = (), values: Iterable[str] = ()) -> Redactor:
        return cls(DEFAULT_NAME_PATTERNS + tuple(names), DEFAULT_VALUE_PATTERNS + tuple(values))

    # -- learning secrets -------------------------------------------------------
    def learn(self, value: Any) -> None:
        """Remember every scalar inside value as a secret to scrub from free text."""
        if isinstance(value, Mapping):
            for v in value.values():
                self.learn(v)
        elif isinstance(value, (list, tuple)):
            for v in value:
                self.learn(v)
        elif isinstance(value, str):
            if len(value) >= _MIN_SCRUB_LEN:
                self._known.add(value)
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            if len(str(value)) >= _MIN_SCRUB_LEN:
                self._known.add(str(value))

    def learn_masked(self, value: Any, mask: Any) -> None:
        """Learn the parts of value that a terraform sensitivity mask marks."""
        if mask is True:
            self.learn(value)
        elif isinstance(mask, Mapping) and isinstance(value, Mapping):
            for k, m in mask.items():
                if k in value:
                    self.learn_masked(value[k], m)
        elif isinstance(mask, list) and isinstance(value, list):
            for v, m in zip(value, mask):
                self.learn_masked(v, m)

    # -- applying -----------------------------------------------------------------
    def is_secret_name(self, name: str) -> bool:
        return bool(self._name_re.search(name))

    def scrub(self, text: str) -> str:
        """Remove known sensitive values and credential-shaped substrings from text."""
        if not text:
            return text
        if self._sorted_at != len(self._known):  # _known only grows: its size says when it changed
            self._longest_first = sorted(self._known, key=len, reverse=True)
            self._sorted_at = len(self._known)
        for secret in self._longest_first:
            if secret in text:
                text = text.replace(secret, SENSITIVE)
        return self._value_re.sub(REDACTED, text)

    def value(self, value: Any, mask: Any = None, unknown: Any = None) -> Any:
        """A copy of value with masked parts, secret-named keys and credential strings hidden.

        `unknown` is terraform's after_unknown structure; unknown leaves become UNKNOWN.
        """
        if mask is True:
            self.learn(value)
            return SENSITIVE
        if unknown is True:
            return UNKNOWN
        if isinstance(value, Mapping):
            out: dict[str, Any] = {}
            keys = list(value.keys())
            if isinstance(unknown, Mapping):
                keys += [k for k, u in unknown.items() if u is True and k not in value]
            for k in keys:
                sub_mask = mask.get(k) if isinstance(mask, Mapping) else None
                sub_unknown = unknown.get(k) if isinstance(unknown, Mapping) else None
                v = value.get(k)
                # booleans and numbers under a secret-looking name (disable_password_auth = true,
                # token_ttl = 3600) are settings, not secrets
                if (self.is_secret_name(str(k)) and isinstance(v, (str, Mapping, list, tuple))
                        and sub_unknown is not True):
                    self.learn(v)
                    out[k] = SENSITIVE if sub_mask is True else REDACTED
                else:
                    out[k] = self.value(v, sub_mask, sub_unknown)
            return out
        if isinstance(value, (list, tuple)):
            return [
                self.value(
                    v,
                    mask[i] if isinstance(mask, list) and i < len(mask) else None,
                    unknown[i] if isinstance(unknown, list) and i < len(unknown) else None,
                )
                for i, v in enumerate(value)
            ]
        if isinstance(value, str):
            return self.scrub(value)
        return value

    def argv(self, args: Iterable[str]) -> list[str]:
        """Terraform arguments as safe to record: -var values hidden, the rest scrubbed."""
        out: list[str] = []
        hide_next = False
        for a in args:
            if hide_next:
                out.append(_hide_var(a))
                hide_next = False
            elif a in ("-var", "--var"):
                out.append(a)
                hide_next = True
            elif a.startswith(("-var=", "--var=")):
                flag, _, rest = a.partition("=")
                out.append(f"{flag}={_hide_var(rest)}")
            else:
                out.append(self.scrub(a))
        return out


class LineScrubber:
    """Scrubs text that arrives a line at a time (provisioner output, terraform's progress), hiding a
    private key block whole: once a line opens one, every later line of the same stream is hidden
    until the line that closes it. Streams are told apart by a key (resource and provisioner)."""

    def __init__(self, redactor: Redactor) -> None:
        self._redactor = redactor
        self._open: set[str] = set()

    def line(self, text: str, key: str = "") -> str:
        out: list[str] = []
        for part in text.split("\n"):
            out.append(self._one(part, key))
        return "\n".join(out)

    def _one(self, text: str, key: str) -> str:
        if key in self._open:
            end = _BLOCK_END.search(text)
            if end is None:
                return _keep_prefix(text) + REDACTED
            self._open.discard(key)
            return _keep_prefix(text) + REDACTED + self._one(text[end.end():], key)
        begin = _BLOCK_BEGIN.search(text)
        if begin is not None and _BLOCK_END.search(text, begin.end()) is None:
            self._open.add(key)
        return self._redactor.scrub(text)

    def scrub_alone(self, text: str) -> str:
        """Scrub text that is no part of a line stream (the open blocks are left as they are)."""
        return self._redactor.scrub(text)

    def __call__(self, text: str) -> str:
        return self.line(text)


_PREFIX = re.compile(r"^[^:\n]*: \([a-z-]+\): ")  # "aws_instance.web (remote-exec): " and the like


def _keep_prefix(text: str) -> str:
    """Keep terraform's "ADDRESS: (PROVISIONER): " prefix on a hidden line, so the output stays readable."""
    m = _PREFIX.match(text)
    return m.group(0) if m else ""


def _hide_var(assignment: str) -> str:
    name, sep, _ = assignment.partition("=")
    return f"{name}={REDACTED}" if sep else REDACTED
