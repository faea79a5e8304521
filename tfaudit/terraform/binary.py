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

from tfaudit.terraform import proc as _proc
from tfaudit.terraform.args import probe_argv, terraform_env
from tfaudit.errors import TerraformError, TerraformNotFound


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
            saved_plan_note: SavedPlanNote | None = None) -> int:
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


_ANSI = re.compile(rb"\x1b\[[0-9;]*m")
_RULE = "─".encode()
_LEADING_ANSI = re.compile(rb"(?:\x1b\[0m)+(?=\x1b\[3[13]m)")  # a reset carried over from the line before a box


class SavedPlanNote:
    """Rewrites terraform's "Saved the plan to: FILE ... terraform apply "FILE"" block when FILE is
    tfaudit's temporary plan, which is deleted and must not be applied by hand.

    In front of tfaudit's own approval prompt (apply, destroy) the block and the horizontal
    rule before it are dropped, as `terraform apply` shows neither; after `tfaudit plan` the
    block becomes terraform's own note for a plan run without -out. Output passes through as
    it arrives; only a rule, or a partial line that could begin the block, is held back until
    what follows shows whether it belongs to the block.
    """

    _START = b"Saved the plan to: "
    _MAX_DROPPED = 4  # the block's own lines: a changed format never swallows more than this

    def __init__(self, tool: str, *, replace_with_note: bool, hold_diagnostics: bool = False) -> None:
        name = "OpenTofu" if tool == "tofu" else "Terraform"
        self.replacement = (
            f"Note: You didn't use the -out option to save this plan, so {name} can't\n"
            f'guarantee to take exactly these actions if you run "{tool} apply" now.\n'.encode()
            if replace_with_note else b""
        )
        self.drop_rule = not replace_with_note  # `terraform apply` shows no rule before its prompt
        self.buf = b""
        self.held: list[bytes] = []  # a horizontal rule (and blank lines) that may precede the block
        self.dropping = 0  # lines still to drop; 0 when not inside the block
        # `terraform apply -auto-approve` shows the plan's warnings at the end, with the apply's own:
        # what follows the "Plan:" line up to the rule is kept back for the caller to show then
        self.hold_diagnostics = hold_diagnostics
        self.after_plan_line = False
        self.diagnostics: list[bytes] = []

    def feed(self, data: bytes) -> bytes:
        self.buf += data
        out: list[bytes] = []
        while (nl := self.buf.find(b"\n")) >= 0:
            line, self.buf = self.buf[: nl + 1], self.buf[nl + 1:]
            out.append(self._line(line))
        maybe_rule = self.drop_rule and self.buf.startswith((b"\x1b", _RULE[: len(self.buf)]))
        if (self.buf and not self.dropping and not maybe_rule
                and not self._START.startswith(self.buf[: len(self._START)])):
            # not the block (a prompt, say): show it, and any rule held back, now
            out.append(b"".join(self.held) + self.buf)
            self.held, self.buf = [], b""
        return b"".join(out)

    def _line(self, line: bytes) -> bytes:
        if self.dropping:
            self.dropping -= 1
            if line.startswith(b"    ") and b' apply "' in line:
                self.dropping = 0
            return b""
        visible = _ANSI.sub(b"", line).strip()
        rule = bool(visible) and not visible.strip(_RULE)
        colour_only = not visible and bool(line.strip())  # terraform opens its rule with a colour line
        if self.drop_rule and (rule or (not visible and (colour_only or self.held))):
            self.held.append(line)  # a rule, or what surrounds one: wait for what follows
            return b""
        held, self.held = b"".join(self.held), []
        if line.startswith(self._START):
            self.dropping = self._MAX_DROPPED
            if self.diagnostics and self.diagnostics[-1] == b"\n":
                self.diagnostics.pop()  # without colour, the blank line before the rule belongs to the rule
            if self.drop_rule:
                # the rule goes; what the line before it left open (a reset) stays, as terraform apply shows it
                return held.split(b"\x1b[90m", 1)[0] if b"\x1b[90m" in held else b"".join(_ANSI.findall(held))
            return b"".join(_ANSI.findall(held)) + self.replacement
        if self.hold_diagnostics and self.after_plan_line:
            carried = _LEADING_ANSI.match(held + line)
            lead = carried.group(0) if carried and not self.diagnostics else b""
            self.diagnostics.append((held + line)[len(lead):])
            return lead
        if visible.startswith((b"Plan: ", b"No changes.")):
            self.after_plan_line = True
        return held + line

    def close(self) -> bytes:
        rest, self.buf = b"".join(self.held) + self.buf, b""
        self.held = []
        return b"" if self.dropping else rest


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
    res = _proc.run([path, "version", "-json"], env=env, timeout=60)
    version: str | None = None
    if res.ok:
        try:
            doc = json.loads(res.stdout)
            version = str(doc.get("terraform_version") or doc.get("version") or "") or None
        except ValueError:
            version = None
    if chdir is not None and not Path(chdir).is_dir():
        raise TerraformError(f"-chdir={chdir}: no such directory", hint="check the path given to -chdir")
    return Terraform(path, tool, version, chdir, env)


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
