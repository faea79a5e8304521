"""tfaudit: signed, hash-chained audit records for every terraform change."""

from __future__ import annotations

__version__ = "0.1.0"
