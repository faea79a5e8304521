"""Offline pip for tests that install tfaudit the way users do (the GitHub action, pre-commit).

No network in tests: the dependencies already installed in this virtualenv are packed back
into wheels (their RECORD lists every file), so `pip install <tfaudit source>` with
PIP_NO_INDEX and PIP_FIND_LINKS pointing here resolves everything locally, build backend
included.
"""

from __future__ import annotations

import base64
import csv
import hashlib
import io
import re
import zipfile
from importlib import metadata
from pathlib import Path

from pip._vendor.packaging.requirements import Requirement  # pip is always in a venv

def _dist(name: str) -> metadata.Distribution | None:
    try:
        return metadata.distribution(name)
    except metadata.PackageNotFoundError:
        return None


def closure(root: str, extras: tuple[str, ...] = ()) -> list[metadata.Distribution]:
    """The installed distributions root needs at run time (with extras), root excluded."""
    seen: dict[str, metadata.Distribution] = {}
    todo: list[tuple[str, tuple[str, ...]]] = [(root, extras)]
    while todo:
        name, ex = todo.pop()
        dist = _dist(name)
        if dist is None:
            continue
        for spec in dist.requires or []:
            req = Requirement(spec)
            envs = [{"extra": e} for e in ex] or [{"extra": ""}]
            if req.marker is not None and not any(req.marker.evaluate(e) for e in envs):
                continue
            key = re.sub(r"[-_.]+", "-", req.name).lower()
            if key not in seen and _dist(req.name) is not None:
                seen[key] = _dist(req.name)  # type: ignore[assignment]
                todo.append((req.name, tuple(req.extras)))
    return list(seen.values())


def _wheel_tag(dist: metadata.Distribution) -> str:
    text = dist.read_text("WHEEL") or ""
    tags = [line.split(":", 1)[1].strip() for line in text.splitlines() if line.startswith("Tag:")]
    preferred = [t for t in tags if t.startswith(("py3", "cp3"))]
    return (preferred or tags or ["py3-none-any"])[0]


def pack(dist: metadata.Distribution, out_dir: Path) -> Path:
    name = re.sub(r"[-_.]+", "_", dist.metadata["Name"])
    version = dist.version
    target = out_dir / f"{name}-{version}-{_wheel_tag(dist)}.whl"
    if target.exists():
        return target
    base = Path(str(dist.locate_file("")))
    rows = []
    record_name = None
    with zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as zf:
        for f in dist.files or []:
            rel = str(f)
            if rel.startswith("..") or "__pycache__" in rel or rel.endswith(".pyc"):
                continue
            if rel.endswith(".dist-info/RECORD") and rel.count("/") == 1:  # not a vendored package's
                record_name = rel
                continue
            path = base / rel
            if not path.is_file():
                continue
            data = path.read_bytes()
            digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
            rows.append((rel, f"sha256={digest}", str(len(data))))
            zf.writestr(rel, data)
        if record_name is None:
            record_name = f"{name}-{version}.dist-info/RECORD"
        buf = io.StringIO()
        csv.writer(buf, lineterminator="\n").writerows([*rows, (record_name, "", "")])
        zf.writestr(record_name, buf.getvalue())
    return target


def project_requirements(pyproject: Path) -> list[str]:
    import tomllib

    data = tomllib.loads(pyproject.read_text())
    return [*data["project"]["dependencies"], *data["build-system"]["requires"]]


def build_wheelhouse(out_dir: Path, pyproject: Path) -> Path:
    """Wheels for the project's dependencies (read from its pyproject.toml, not stale metadata) and build backend."""
    out_dir.mkdir(parents=True, exist_ok=True)
    dists: dict[str, metadata.Distribution] = {}
    for spec in project_requirements(pyproject):
        req = Requirement(spec)
        dist = _dist(req.name)
        if dist is None:
            raise RuntimeError(f"{req.name} is not installed here; reinstall the test environment (scripts/test.sh)")
        dists[req.name.lower()] = dist
        for dep in closure(req.name, tuple(req.extras)):
            dists[dep.metadata["Name"].lower()] = dep
    for dist in dists.values():
        pack(dist, out_dir)
    return out_dir


def offline_pip_env(wheelhouse: Path) -> dict[str, str]:
    return {"PIP_NO_INDEX": "1", "PIP_FIND_LINKS": str(wheelhouse), "PIP_DISABLE_PIP_VERSION_CHECK": "1",
            "PIP_NO_CACHE_DIR": "1"}


def snapshot_repo(src: Path, dest: Path) -> Path:
    """The project's files as a fresh checkout would have them: tracked and new files, not ignored ones."""
    import shutil
    import subprocess

    listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=src,
                            capture_output=True, check=True).stdout.decode().split("\0")
    for rel in filter(None, listed):
        s = src / rel
        if not s.is_file() or rel.startswith((".venv/", "build/")) or ".egg-info/" in rel:
            continue
        d = dest / rel
        d.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(s, d)
    return dest
