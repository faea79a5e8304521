"""The only place that starts terraform (or OpenTofu): find the binary, build argv, run, stream."""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from tfaudit.terraform import proc as _proc
from tfaudit.terraform.args import probe_argv, terraform_env
from tfaudit.errors import TerraformError, TerraformNotFound


class OutputFilter(Protocol):
    """Rewrites terraform's terminal output as it passes (e.g. tfaudit.ui.saved_plan.SavedPlanNote)."""

    def feed(self, data: bytes) -> bytes: ...

    def close(self) -> bytes: ...


@dataclass(frozen=True)
class Terraform:
    path: str
    tool: str  # "terraform" | "tofu"
    version: str | None
    chdir: str | None = None
    env: Mapping[str, str] = field(default_factory=dict, repr=False)

    @property
    def working_dir(self) -> Path:
        return Path(self.chdir).resolve() if self.chdir else Path.cwd()

    def argv(self, *args: str) -> list[str]:
        return [self.path, *([f"-chdir={self.chdir}"] if self.chdir else []), *args]

    def run(self, args: Sequence[str], *, forwarder: _proc.SignalForwarder | None = None,
            saved_plan_note: OutputFilter | None = None) -> int:
        """Run with the terminal attached: the user sees what terraform prints, except (with
        saved_plan_note) the lines pointing at tfaudit's temporary plan file."""
        if saved_plan_note is None:
            return _proc.run_streaming(self.argv(*args), env=self.env, forwarder=forwarder)
        out = sys.stdout.buffer

        def write(data: bytes) -> None:
            if data:
                out.write(data)
                out.flush()

        sys.stdout.flush()
        rc = _proc.run_streaming(self.argv(*args), on_chunk=lambda d: write(saved_plan_note.feed(d)),
                                 env=self.env, forwarder=forwarder)
        write(saved_plan_note.close())
        return rc

    def stream(self, args: Sequence[str], on_line: Callable[[bytes], None], *,
               forwarder: _proc.SignalForwarder | None = None) -> int:
        """Run with stdout fed to on_line one line at a time (for -json output)."""
        return _proc.run_streaming(self.argv(*args), on_line=on_line, env=self.env, forwarder=forwarder)

    def stream_journaled(self, args: Sequence[str], journal: Path, on_line: Callable[[bytes], None], *,
                         forwarder: _proc.SignalForwarder | None = None,
                         on_start: Callable[[int], None] | None = None) -> int:
        """Run so that terraform outlives tfaudit: stdout into the journal file, which tfaudit follows."""
        return _proc.run_journaled(self.argv(*args), journal, on_line, env=self.env, forwarder=forwarder,
                                   on_start=on_start)

    def capture(self, args: Sequence[str], *, timeout: float | None = 300) -> _proc.Result:
        return _proc.run(self.argv(*args), env=self.env, timeout=timeout)

    def _checked(self, args: Sequence[str], what: str, hint: str | None = None) -> bytes:
        res = self.capture(args)
        if not res.ok:
            detail = _first_error_line(res.stderr_text())
            raise TerraformError(f"'{self.tool} {' '.join(args)}' failed ({what}): {detail}",
                                 argv=list(res.argv), returncode=res.returncode, stderr=res.stderr_text(), hint=hint)
        return res.stdout

    def show_json(self, plan_file: str | Path) -> bytes:
        return self._checked(["show", "-json", str(plan_file)], "reading the saved plan",
                             hint="is it a plan file written by this terraform version?")

    def state_pull(self) -> bytes | None:
        """The current state's bytes, or None when there is no state (or it cannot be read yet)."""
        res = self.capture(["state", "pull"])
        if not res.ok or not res.stdout.strip():
            return None
        return res.stdout

    def workspace(self) -> str:
        """The selected workspace, read the way terraform reads it, without starting terraform."""
        if self.env.get("TF_WORKSPACE"):
            return self.env["TF_WORKSPACE"]
        data_dir = Path(self.env.get("TF_DATA_DIR") or ".terraform")
        env_file = data_dir if data_dir.is_absolute() else self.working_dir / data_dir
        try:
            name = (env_file / "environment").read_text().strip()
        except OSError:
            return "default"
        return name or "default"


_ANSI_TEXT = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


def _first_error_line(stderr: str) -> str:
    """terraform's first error in its own words, colour codes stripped: the summary and the detail
    below it, rejoined into one line (e.g. "Couldn't show local plan: Plan read error: plan file
    was created by Terraform 1.7.3, but this is 1.11.4; ...")."""
    lines = [ln.strip(" │╷╵\t") for ln in _ANSI_TEXT.sub("", stderr).splitlines()]
    for i, line in enumerate(lines):
        if line.startswith("Error:"):
            summary = line[len("Error:"):].strip()
            detail: list[str] = []
            for more in lines[i + 1:]:
                if more.startswith(("Error:", "Warning:")):
                    break
                if more:
                    detail.append(more)
            return (f"{summary}: {' '.join(detail)}" if detail else summary)[:500]
    text = [ln for ln in lines if ln]
    return (text[0] if text else "no output")[:300]


def find_binary(explicit: str | None, env: Mapping[str, str]) -> tuple[str, str]:
    """--tf-path, then TFAUDIT_TF_PATH, then terraform, then tofu on PATH."""
    path_var = env.get("PATH", os.defpath)
    for candidate, origin in ((explicit, "--tf-path"), (env.get("TFAUDIT_TF_PATH"), "TFAUDIT_TF_PATH")):
        if candidate:
            found = shutil.which(candidate, path=path_var) if os.sep not in candidate else candidate
            if not found or not os.access(found, os.X_OK):
                raise TerraformNotFound(f"{origin} points at {candidate}, which is not an executable",
                                        hint="fix the path, or unset it to search PATH")
            return found, _tool_name(found)
    for name in ("terraform", "tofu"):
        for directory in path_var.split(os.pathsep):
            found = shutil.which(name, path=directory or ".")
            if found and not is_tfaudit(found):  # a `terraform` shim that runs tfaudit must not run itself
                return found, _tool_name(found)
    raise TerraformNotFound("neither terraform nor tofu was found on PATH",
                            hint="install one, or pass --tf-path / set TFAUDIT_TF_PATH")


def is_tfaudit(path: str) -> bool:
    """Whether `path` is tfaudit itself: its entry point, a link to it, or a small script that runs it
    (`alias terraform=tfaudit` done with a file on PATH)."""
    try:
        real = os.path.realpath(path)
        if sys.argv and sys.argv[0] and real == os.path.realpath(sys.argv[0]):
            return True
        with open(real, "rb") as f:
            head = f.read(4096)
    except OSError:
        return False
    return head.startswith(b"#!") and b"tfaudit" in head


def _tool_name(path: str) -> str:
    return "tofu" if "tofu" in Path(path).name else "terraform"


def detect(explicit: str | None, env: Mapping[str, str], chdir: str | None) -> Terraform:
    path, tool = find_binary(explicit, env)
    env = terraform_env(env)  # TF_CLI_ARGS* were routed by tfaudit (terraform.args.env_args) already
    if chdir is not None and not Path(chdir).is_dir():
        raise TerraformError(f"-chdir={chdir}: no such directory", hint="check the path given to -chdir")
    return Terraform(path, tool, tool_version(path, env), chdir, env)


def tool_version(path: str, env: Mapping[str, str]) -> str | None:
    """`terraform version -json`'s version, remembered per binary (path, size, mtime): starting
    terraform only to ask costs about 0.1 s of every run. Version managers' shims (scripts, or
    links to a dispatcher such as mise) pick the version per directory: they are asked every time."""
    key = _binary_key(path)
    cache = _version_cache(env)
    if key is not None:
        try:
            known = json.loads(cache.read_text()).get(key)
            if isinstance(known, str) and known:
                return known
        except (OSError, ValueError, AttributeError):
            pass
    res = _proc.run([path, "version", "-json"], env=env, timeout=60)
    version: str | None = None
    if res.ok:
        try:
            doc = json.loads(res.stdout)
            version = str(doc.get("terraform_version") or doc.get("version") or "") or None
        except ValueError:
            version = None
    if key is not None and version is not None:
        _remember(cache, key, version)
    return version


def _binary_key(path: str) -> str | None:
    real = os.path.realpath(path)
    if not any(name in Path(real).name for name in ("terraform", "tofu")):
        return None  # a link to a version manager's dispatcher (mise, ...)
    try:
        st = os.stat(real)
        with open(real, "rb") as f:
            if f.read(2) == b"#!":
                return None  # a version manager's shim script
    except OSError:
        return None
    return f"{real}:{st.st_size}:{st.st_mtime_ns}"


def _version_cache(env: Mapping[str, str]) -> Path:
    base = env.get("XDG_CACHE_HOME") or os.path.join(env.get("HOME") or os.path.expanduser("~"), ".cache")
    return Path(base) / "tfaudit" / "tool-versions.json"


def _remember(cache: Path, key: str, version: str) -> None:
    try:
        known = json.loads(cache.read_text())
        known = known if isinstance(known, dict) else {}
    except (OSError, ValueError):
        known = {}
    known[key] = version
    try:
        cache.parent.mkdir(parents=True, exist_ok=True)
        tmp = cache.with_name(f"{cache.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps(known, sort_keys=True))
        os.replace(tmp, cache)
    except OSError:
        pass  # a cache we cannot write only costs a `terraform version` per run


_PROBE = "-tfaudit-flag-probe"


def rejected_flags(words: Sequence[str], args: Sequence[str], *, tf_path: str | None, env: Mapping[str, str],
                   chdir: str | None) -> int | None:
    """When args has a flag tfaudit does not know for `words`, ask terraform, which stops at the first
    flag it does not know before doing anything: its own error is shown and its exit code returned
    (nothing happened, nothing is recorded); None when terraform takes every flag."""
    path, _tool = find_binary(tf_path, env)
    argv = [path, *([f"-chdir={chdir}"] if chdir else []), *probe_argv(words, args, _PROBE)]
    res = _proc.run(argv, env=terraform_env(env), timeout=120)
    if _PROBE.encode() in res.stderr + res.stdout:
        return None
    sys.stdout.buffer.write(res.stdout)
    sys.stdout.flush()
    sys.stderr.buffer.write(res.stderr)
    sys.stderr.flush()
    return res.returncode or 1


def sha256_file(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()
