"""A local backend's state, read from its file: the bytes `terraform state pull` would print.

`terraform state pull` is a terraform process (about 0.1 s; tfaudit reads the state before and
after every run). For the local backend the file is the state, so tfaudit reads it itself, but
only where it is sure the bytes are those `state pull` prints (they are hashed and compared with
the ledger's, so a different spelling would look like an out-of-band change):

- terraform, not OpenTofu (whose state may be encrypted at rest);
- the local backend: configured (`.terraform/terraform.tfstate` says "local" and the
  configuration declares no other backend) or the default (no backend recorded by init and no
  `backend` or `cloud` block waiting for one);
- a state file in the form this very terraform version writes (format 4, its own version in
  `terraform_version`, ending in "}\\n"): `state pull` re-encodes the state the same way and
  adds a newline.

No state file in the default workspace reads as `state pull` prints it: nothing. Anything else
(another backend, a workspace without a state file, an older terraform's file, a hand-written
one) returns None, and the caller asks terraform.

The local backend's legacy flags `-state=PATH` and `-state-out=PATH` move terraform to another
file (in every workspace; other backends ignore them). `terraform state pull` takes neither, so
that file is read here whatever its form (`StateFiles`, `override_path`, `read_state_file`).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from tfaudit.terraform.args import moved_to, state_flags

_BACKEND_BLOCK = re.compile(rb'(?m)^\s*backend\s+"?([A-Za-z0-9_-]+)"?\s*\{')
_CLOUD_BLOCK = re.compile(rb"(?m)^\s*cloud\s*\{")
_LIMIT = 1 << 20  # configuration files larger than this are not scanned: ask terraform


class _Tf(Protocol):
    @property
    def tool(self) -> str: ...

    @property
    def version(self) -> str | None: ...

    @property
    def env(self) -> Mapping[str, str]: ...

    @property
    def working_dir(self) -> Path: ...

    def workspace(self) -> str: ...


def recorded_backend(tf: _Tf) -> Mapping[str, Any] | None:
    """The backend `terraform init` recorded (`.terraform/terraform.tfstate`), or None."""
    data_dir = Path(tf.env.get("TF_DATA_DIR") or ".terraform")
    data_dir = data_dir if data_dir.is_absolute() else tf.working_dir / data_dir
    try:
        backend = json.loads((data_dir / "terraform.tfstate").read_text()).get("backend")
    except (OSError, ValueError, AttributeError):
        return None
    if not isinstance(backend, Mapping) or not isinstance(backend.get("type"), str):
        return None
    return backend


def local_path(tf: _Tf, backend: Mapping[str, Any] | None) -> Path | None:
    """The state file of a local backend (None: another backend), for the selected workspace."""
    backend = backend or {"type": "local", "config": {}}  # no backend block: the default local state
    if backend["type"] != "local":
        return None
    config: Mapping[str, Any] = backend["config"] if isinstance(backend.get("config"), Mapping) else {}
    workspace = tf.workspace()
    if workspace == "default":
        path = Path(str(config.get("path") or "terraform.tfstate"))
    else:
        path = Path(str(config.get("workspace_dir") or "terraform.tfstate.d")) / workspace / "terraform.tfstate"
    return path if path.is_absolute() else (tf.working_dir / path).resolve()


def _declares_only_local(working_dir: Path, recorded: bool) -> bool:
    """Whether the configuration's backend agrees with what init recorded (`recorded`: a local
    backend; otherwise none): no block for another backend, no `cloud` block."""
    try:
        files = list(working_dir.glob("*.tf")) + list(working_dir.glob("*.tf.json"))
        for f in files:
            if f.stat().st_size > _LIMIT:
                return False
            text = f.read_bytes()
            if f.name.endswith(".json"):
                if b'"backend"' in text or b'"cloud"' in text:
                    return False
                continue
            if _CLOUD_BLOCK.search(text):
                return False
            kinds = set(_BACKEND_BLOCK.findall(text))
            if kinds - ({b"local"} if recorded else set()):
                return False
    except OSError:
        return False
    return True


def _pull_form(data: bytes, version: str) -> bytes | None:
    """`data` as `state pull` prints it, when it is in the form this terraform version writes."""
    head = b'{\n  "version": 4,\n  "terraform_version": "' + version.encode() + b'",\n'
    if not data.startswith(head) or not data.endswith(b"\n}\n"):
        return None
    return data + b"\n"


def read_local_state(tf: _Tf) -> bytes | None:
    """What `terraform state pull` would print, read from the local state file; None when unsure."""
    if tf.tool != "terraform" or not tf.version:
        return None
    backend = recorded_backend(tf)
    path = local_path(tf, backend)
    if path is None or not _declares_only_local(tf.working_dir, backend is not None):
        return None
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        # no state yet: `state pull` prints nothing; in another workspace it may not exist at all
        return b"" if tf.workspace() == "default" else None
    except OSError:
        return None  # unreadable: terraform says why
    return _pull_form(data, tf.version)


# --- -state / -state-out: the local backend's legacy flags ------------------------------------
@dataclass(frozen=True)
class StateFiles:
    """The state files one command's -state/-state-out name (absolute), None for the backend's own:
    `read` is the state terraform starts from, `written` the one it leaves; `moved_to` a second
    state it writes (`state mv -state-out`; it may be the same state as `read`)."""

    read: Path | None = None
    written: Path | None = None
    moved_to: Path | None = None

    @classmethod
    def of(cls, tf: _Tf, command: str, args: Sequence[str]) -> StateFiles:
        read, written = state_flags(command, args)
        return cls(_absolute(tf, read), _absolute(tf, written), _absolute(tf, moved_to(command, args)))


def _absolute(tf: _Tf, path: str | None) -> Path | None:
    return None if path is None else (tf.working_dir / path).resolve()  # terraform: relative to -chdir


def override_path(tf: _Tf, path: Path | None) -> Path | None:
    """`path` (from -state or -state-out) when terraform uses it instead of the backend's own file:
    a local backend (terraform ignores the flags with any other) and another file than the
    backend's (that one reads as always)."""
    if path is None:
        return None
    backend = recorded_backend(tf)
    own = local_path(tf, backend)
    if own is None or own == path or not _declares_only_local(tf.working_dir, backend is not None):
        return None
    return path


def read_state_file(tf: _Tf, path: Path) -> bytes | None:
    """A -state file's state: as `state pull` would print it when this terraform wrote it, else its
    bytes (no terraform command reads it); nothing when it does not exist (terraform starts from an
    empty state there); None when it cannot be read."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return b""
    except OSError:
        return None
    return (_pull_form(data, tf.version) if tf.version else None) or data
