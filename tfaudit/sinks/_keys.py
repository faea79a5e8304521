"""Safe S3 object keys: shared by the S3 sink and the S3 checkpoint destination.

A prefix or key part comes from config, the command line or terraform (a workspace name):
none of them may climb out of the prefix it is written under or name an odd object.
"""

from __future__ import annotations

import re

_UNSAFE_KEY_CHARS = re.compile(r"[^A-Za-z0-9._=-]")


def key_part(value: str) -> str:
    """One safe path segment: letters, digits, . _ = -; never empty, never '.' or '..'."""
    cleaned = _UNSAFE_KEY_CHARS.sub("_", value)[:128]
    return cleaned if cleaned.strip(".") else "_" * max(1, len(cleaned))


def clean_prefix(prefix: str) -> str:
    """A key prefix of safe segments ending in '/', or '' ('../../x' -> '__/__/x/', 'a//b' -> 'a/b/')."""
    parts = [key_part(p) for p in prefix.split("/") if p.strip()]
    return "/".join(parts) + "/" if parts else ""
