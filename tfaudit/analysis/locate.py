"""Where in the configuration a resource address is declared: the `.tf` file and line of its block.

Instance keys are dropped (`aws_s3_bucket.b["x"]` is declared by `resource "aws_s3_bucket" "b"`);
module calls are followed through `.terraform/modules/modules.json`, the map `terraform init`
writes from module keys (`net.subnets`) to directories, and, before init, through a module
block's local `source = "./..."`. Files are read through tfaudit/_hcl.py.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

from tfaudit._hcl import module_source, top_level_blocks

_STEP = re.compile(r'\s*([A-Za-z_][A-Za-z0-9_-]*)(\[(?:"(?:[^"\\]|\\.)*"|[^\]]*)\])?\.?')


@dataclass(frozen=True)
class SourceLocation:
    file: Path  # absolute
    line: int


def split_address(address: str) -> tuple[tuple[str, ...], str, str, str] | None:
    """(module call names, mode, type, name) of a resource address; None when it is not one."""
    words: list[str] = []
    pos = 0
    while pos < len(address):
        m = _STEP.match(address, pos)
        if not m or m.end() == pos:
            return None
        words.append(m.group(1))
        pos = m.end()
    modules: list[str] = []
    while len(words) >= 2 and words[0] == "module":
        modules.append(words[1])
        words = words[2:]
    mode = "resource"
    if words[:1] == ["data"]:
        mode, words = "data", words[1:]
    if len(words) != 2:
        return None
    return tuple(modules), mode, words[0], words[1]


class ConfigLocator:
    """Finds declarations under one root module directory; each directory is read once."""

    def __init__(self, root: Path) -> None:
        self.root = root.resolve()
        self._blocks: dict[Path, dict[tuple[str, ...], SourceLocation]] = {}
        self._modules: dict[str, Path] | None = None

    def _index(self, directory: Path) -> dict[tuple[str, ...], SourceLocation]:
        if directory not in self._blocks:
            found: dict[tuple[str, ...], SourceLocation] = {}
            for tf in sorted(directory.glob("*.tf")) if directory.is_dir() else []:
                for kind, labels, line in top_level_blocks(tf):
                    found.setdefault((kind, *labels), SourceLocation(tf, line))
            self._blocks[directory] = found
        return self._blocks[directory]

    def _manifest(self) -> dict[str, Path]:
        if self._modules is None:
            self._modules = {}
            try:
                doc = json.loads((self.root / ".terraform" / "modules" / "modules.json").read_text("utf-8"))
            except (OSError, ValueError):
                doc = {}
            for m in doc.get("Modules") or [] if isinstance(doc, dict) else []:
                if isinstance(m, dict) and isinstance(m.get("Key"), str) and isinstance(m.get("Dir"), str):
                    self._modules[m["Key"]] = self.root / m["Dir"]  # not resolved: a symlinked copy stays under .terraform
        return self._modules

    def module_dir(self, calls: tuple[str, ...]) -> Path | None:
        if not calls:
            return self.root
        known = self._manifest().get(".".join(calls))
        if known is not None:
            return known
        parent = self.module_dir(calls[:-1])  # before init: a local source relative to the caller
        if parent is None:
            return None
        block = self._index(parent).get(("module", calls[-1]))
        if block is None:
            return None
        source = module_source(block.file, calls[-1])
        if source and source.startswith(("./", "../")):
            return (parent / source).resolve()
        return None

    def locate(self, address: str) -> SourceLocation | None:
        parts = split_address(address)
        if parts is None:
            return None
        calls, mode, rtype, name = parts
        directory = self.module_dir(calls)
        if directory is None:
            return None
        return self._index(directory).get((mode, rtype, name))

    def in_repository(self, address: str, repository: Path) -> SourceLocation | None:
        """The resource block, or, when that lies outside the repository (a module terraform init
        downloaded or linked into `.terraform/modules/`) or cannot be found, the nearest module call
        that brings it in."""
        parts = split_address(address)
        if parts is None:
            return None
        loc = self.locate(address)
        calls = parts[0]
        def outside(loc: SourceLocation) -> bool:
            return ".terraform" in loc.file.parts or not loc.file.is_relative_to(repository)

        while (loc is None or outside(loc)) and calls:
            parent = self.module_dir(calls[:-1])
            loc = self._index(parent).get(("module", calls[-1])) if parent else None
            calls = calls[:-1]
        return None if loc is None or outside(loc) else loc


def repository_root(start: Path) -> Path:
    """The nearest directory holding `.git` (a directory, or a file in a worktree), else start."""
    start = start.resolve()
    for d in (start, *start.parents):
        if (d / ".git").exists():
            return d
    return start
