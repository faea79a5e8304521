"""The record schema compiled by fastjsonschema, kept between runs.

fastjsonschema writes the schema out as Python source and compiles it: about 0.2 s, on every
run before its first record. The compiled code is kept as a marshalled code object in the user's
cache directory (as Python keeps a module's bytecode in __pycache__), under a name made of what
it depends on: the schema's sha256, fastjsonschema's version and the interpreter's bytecode
magic. A file that is not the user's own and private, or does not load, is ignored and rewritten.
"""

from __future__ import annotations

import hashlib
import importlib.util
import marshal
import os
import re
import stat
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

_ENTRY = re.compile(r"^def (\w+)\(", re.M)  # compile_to_code writes the schema's own function first


def _cache_dir(env: Mapping[str, str]) -> Path:
    base = env.get("XDG_CACHE_HOME") or os.path.join(env.get("HOME") or os.path.expanduser("~"), ".cache")
    return Path(base) / "tfaudit"


def _load(path: Path) -> Any:
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    except OSError:
        return None
    with os.fdopen(fd, "rb") as f:
        st = os.fstat(f.fileno())
        if not stat.S_ISREG(st.st_mode) or st.st_uid != os.getuid() or st.st_mode & 0o077:
            return None  # only the user's own private file: it is run as code
        try:
            return marshal.loads(f.read())
        except (EOFError, ValueError, TypeError):
            return None


def _store(path: Path, code: Any) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | getattr(os, "O_NOFOLLOW", 0), 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(marshal.dumps(code))
        os.replace(tmp, path)
        for old in path.parent.glob(path.name.rsplit("-", 1)[0] + "-*.marshal"):
            if old != path:
                old.unlink(missing_ok=True)  # another schema's, for this interpreter: rebuilt if it comes back
    except OSError:
        pass  # without a cache, each run compiles the schema again


def fast_validator(schema: Mapping[str, Any], schema_text: str) -> Callable[[Any], Any]:
    """fastjsonschema's validator for the record schema (its code from the cache when there)."""
    import fastjsonschema

    key = hashlib.sha256(f"{schema_text}\0{fastjsonschema.VERSION}".encode()).hexdigest()[:32]
    path = _cache_dir(os.environ) / f"record-schema-{importlib.util.MAGIC_NUMBER.hex()}-{key}.marshal"
    cached = _load(path)
    namespace: dict[str, Any] = {}
    if isinstance(cached, tuple) and len(cached) == 2 and isinstance(cached[0], str):
        name, code = cached
        try:
            exec(code, namespace)  # noqa: S102 - fastjsonschema's own output, compiled by this interpreter
        except Exception:  # noqa: BLE001 - a bad cache entry is rebuilt
            namespace = {}
        if callable(namespace.get(name)):
            found: Callable[[Any], Any] = namespace[name]
            return found
    source = fastjsonschema.compile_to_code(dict(schema), use_default=False, use_formats=False)
    match = _ENTRY.search(source)
    code = compile(source, "<tfaudit record schema>", "exec")
    namespace = {}
    exec(code, namespace)  # noqa: S102 - fastjsonschema's generated validator, as fastjsonschema.compile does
    if match is None or not callable(namespace.get(match.group(1))):
        made: Callable[[Any], Any] = fastjsonschema.compile(dict(schema), use_default=False, use_formats=False)
        return made
    _store(path, (match.group(1), code))
    validate: Callable[[Any], Any] = namespace[match.group(1)]
    return validate
