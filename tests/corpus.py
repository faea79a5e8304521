"""The real-world corpus at ../shared/fixtures/real-world/: read in place, never copied."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

CORPUS = Path(__file__).resolve().parents[1].parent / "shared" / "fixtures" / "real-world"

needs_corpus = pytest.mark.skipif(not (CORPUS / "MANIFEST.tsv").is_file(),
                                  reason=f"real-world corpus not present ({CORPUS})")


def manifest_rows(*kinds: str) -> list[dict[str, str]]:
    """MANIFEST.tsv rows of the given kinds (plan, state, apply-stream, other); [] without the corpus."""
    manifest = CORPUS / "MANIFEST.tsv"
    if not manifest.is_file():
        return []
    with manifest.open(newline="", encoding="utf-8") as f:
        return [r for r in csv.DictReader(f, delimiter="\t") if r["kind"] in kinds]


def corpus_file(rel: str) -> Path:
    path = CORPUS / rel
    if not path.is_file():
        pytest.skip(f"real-world corpus not present ({CORPUS})")
    return path
