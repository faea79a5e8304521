"""Turn terraform's `apply -json` stream back into the screen `terraform apply` shows.

Each event is rendered the way terraform's own human view renders the hook or diagnostic behind
it (terraform's internal/command/views/hook_ui.go, views/apply.go, format/diagnostic.go): the same
words, the same colour codes (terraform colours unless -no-color, on a terminal or not), the
same boxed diagnostics wrapped at the same width. Events the human view does not show
(provision_complete, apply_errored, refresh_complete, planned_change, ...) print nothing.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable, Mapping
from typing import Any, TextIO

from tfaudit.redact import LineScrubber
from tfaudit.ui.values import exact_outputs, outputs_text

# mitchellh/colorstring's tags, as terraform's colorizer uses them
_CODES = {"reset": "0", "bold": "1", "underline": "4", "red": "31", "green": "32", "yellow": "33",
          "dark_gray": "90", "light_gray": "37"}
_TAG = re.compile(r"(?i)\[[a-z0-9_-]+\]")
DEFAULT_COLUMNS = 78  # terraform's width when its output is not a terminal


class Colorize:
    """colorstring.Colorize with Reset: tags become codes (or vanish when disabled); a string that
    used a colour tag ends with a reset."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled

    def __call__(self, text: str) -> str:
        coloured = False

        def sub(m: re.Match[str]) -> str:
            nonlocal coloured
            code = _CODES.get(m.group(0)[1:-1].lower())
            if code is None:
                return m.group(0)
            coloured = True
            return f"\x1b[{code}m" if self.enabled else ""

        out = _TAG.sub(sub, text)
        return out + "\x1b[0m" if coloured and self.enabled else out


def wrap(text: str, limit: int) -> str:
    """mitchellh/go-wordwrap's WrapString: break at spaces so lines fit `limit` runes where a word allows."""
    out: list[str] = []
    current = 0
    word: list[str] = []
    space: list[str] = []
    for ch in text:
        if ch == "\n":
            if not word:
                if current + len(space) <= limit:
                    out += space
            else:
                out += space + word
            word, space = [], []
            out.append(ch)
            current = 0
        elif ch.isspace() and ch != "\u00a0":
            if not space or word:
                current += len(space) + len(word)
                out += space + word
                word, space = [], []
            space.append(ch)
        else:
            word.append(ch)
            if current + len(space) + len(word) > limit and len(word) < limit:
                out.append("\n")
                current = 0
                space = []
    if not word:
        if current + len(space) <= limit:
            out += space
    else:
        out += space + word
    return "".join(out)


def _fmt(template: str, *values: str) -> str:
    """Sprintf on an already colorized template (terraform colorizes the format, then fills it in)."""
    for v in values:
        template = template.replace("%s", v.replace("%", "\0"), 1)
    return template.replace("\0", "%")


def _snippet(diag: Mapping[str, Any], color: Colorize) -> str:
    """snippetFormatter.write: the `with`, `on` and code lines, exactly as terraform buffers them."""
    buf = f"  with {diag['address']},\n" if diag.get("address") else ""
    rng = diag.get("range")
    if not isinstance(rng, Mapping):
        return buf
    start = rng.get("start") or {}
    snippet = diag.get("snippet")
    if not isinstance(snippet, Mapping):
        return buf + f"  on {rng.get('filename')} line {start.get('line')}:\n  (source code not available)\n\n"
    ctx = f", in {snippet['context']}" if snippet.get("context") is not None else ""
    buf += f"  on {rng.get('filename')} line {start.get('line')}{ctx}:\n"
    code = str(snippet.get("code", ""))
    s = max(0, min(int(snippet.get("highlight_start_offset", 0)), len(code)))
    e = max(0, min(int(snippet.get("highlight_end_offset", 0)), len(code)))
    if e < s:
        e = min(s + 1, len(code))
    code = _fmt(color("%s[underline]%s[reset]%s"), code[:s], code[s:e], code[e:])
    first = int(snippet.get("start_line", start.get("line") or 1))
    buf += "".join(f"{first + i:4d}: {line}\n" for i, line in enumerate(code.split("\n")))
    values = sorted(snippet.get("values") or [], key=lambda v: str(v.get("traversal", "")))
    if values:
        buf += color("    [dark_gray]├────────────────[reset]\n")
        for v in values:
            stmt = str(v.get("statement", "")).split("\n")
            buf += _fmt(color("    [dark_gray]│[reset] [bold]%s[reset] %s\n"), str(v.get("traversal", "")), stmt[0])
            buf += "".join(_fmt(color("    [dark_gray]│[reset]   %s\n"), ln) for ln in stmt[1:])
    return buf + "\n"


def diagnostic_text(diag: Mapping[str, Any], color: Colorize, width: int) -> str:
    """format.Diagnostic (boxed, colour) or format.DiagnosticPlain (-no-color), as terraform prints it."""
    severity = str(diag.get("severity", "error"))
    summary = str(diag.get("summary", ""))
    detail = str(diag.get("detail", "") or "")
    if not color.enabled:
        body = "\n" + ("Error: " if severity == "error" else "Warning: " if severity == "warning" else "")
        body += summary + "\n\n" + _snippet(diag, color)
        if detail:
            body += "".join((line if line.startswith(" ") or width <= 1 else wrap(line, width - 1)) + "\n"
                            for line in detail.split("\n"))
        return body
    tint = "red" if severity == "error" else "yellow"
    body = color(f"[bold][{tint}]{'Error' if severity == 'error' else 'Warning'}: [reset]")
    body += _fmt(color("[bold]%s[reset]\n\n"), summary) + _snippet(diag, color)
    if detail:
        para = width - 3
        body += "".join((line if line.startswith(" ") or para <= 0 else wrap(color(line), para)) + "\n"
                        for line in detail.split("\n"))
    rule, start, end = color(f"[{tint}]│[reset] "), color(f"[{tint}]╷[reset]"), color(f"[{tint}]╵[reset]")
    lines = body.split("\n")
    if lines and lines[-1] == "":
        lines.pop()  # bufio.Scanner: a final newline ends the last line, it does not start another
    return "\n".join([start, *(rule + line for line in lines), end]) + "\n"


def columns(stream: TextIO) -> int:
    """terraform's output width: the terminal's, or 78 when not a terminal."""
    try:
        fd = stream.fileno()
        if os.isatty(fd):
            return os.get_terminal_size(fd).columns or DEFAULT_COLUMNS
    except (OSError, ValueError, AttributeError):
        pass
    return DEFAULT_COLUMNS


_START = {"create": "Creating...", "update": "Modifying...", "delete": "Destroying...", "read": "Reading..."}
_STILL = {"create": "Still creating...", "update": "Still modifying...", "delete": "Still destroying...",
          "read": "Still reading..."}
_DONE = {"create": "Creation complete", "update": "Modifications complete", "delete": "Destruction complete",
         "read": "Read complete"}


def approval_prompt(destroy: bool, color: Colorize) -> str:
    """terraform's UIInput query for apply/destroy approval."""
    if destroy:
        query = "\nDo you really want to destroy all resources?"
        lines = ("Terraform will destroy all your managed infrastructure, as shown above.",
                 "There is no undo. Only 'yes' will be accepted to confirm.")
    else:
        query = "\nDo you want to perform these actions?"
        lines = ("Terraform will perform the actions described above.", "Only 'yes' will be accepted to approve.")
    text = "[reset]" + "[bold]\0[reset]\n" + "".join(f"  {ln}\n" for ln in lines) + "\n  [bold]Enter a value:[reset] "
    return color(text).replace("\0", query)


def _duration(seconds: Any) -> str:
    """Go's time.Duration String() for whole seconds: 0s, 12s, 1m5s, 1h0m3s."""
    s = int(seconds or 0)
    h, rest = divmod(s, 3600)
    m, sec = divmod(rest, 60)
    if h:
        return f"{h}h{m}m{sec}s"
    return f"{m}m{sec}s" if m else f"{sec}s"


def _stream_key(msg: Mapping[str, Any]) -> str:
    """Which resource's provisioner a progress line belongs to (lines of parallel resources interleave)."""
    hook = msg.get("hook")
    if not isinstance(hook, Mapping):
        return ""
    resource = hook.get("resource")
    addr = resource.get("addr") if isinstance(resource, Mapping) else None
    return f"{addr}\x00{hook.get('provisioner') or ''}"


def _scrub_strings(value: Any, scrub: Callable[[str], str]) -> Any:
    if isinstance(value, str):
        return scrub(value)
    if isinstance(value, Mapping):
        return {k: _scrub_strings(v, scrub) for k, v in value.items()}
    if isinstance(value, list):
        return [_scrub_strings(v, scrub) for v in value]
    return value


def redact_json_line(raw: bytes, lines: LineScrubber) -> str:
    """One `-json` stream line for the user's terminal: unchanged unless a string in it holds a
    secret (or a line of an open private key block), then re-encoded with those strings hidden."""
    text = raw.decode("utf-8", "replace")
    try:
        msg = json.loads(text)
    except ValueError:
        return lines.line(text.rstrip("\n"), "text") + "\n"
    if not isinstance(msg, dict):
        return lines.line(text.rstrip("\n"), "text") + "\n"
    key = _stream_key(msg)
    clean = _scrub_strings(msg, lines.scrub_alone)
    # the printed line and the provisioner's output are where a key block arrives line by line
    if isinstance(msg.get("@message"), str):
        clean["@message"] = lines.line(msg["@message"], key)
    hook = msg.get("hook")
    if isinstance(hook, dict) and isinstance(hook.get("output"), str):
        clean["hook"]["output"] = lines.line(hook["output"], key + "\x00output")
    return text if clean == msg else json.dumps(clean, ensure_ascii=False, separators=(",", ":")) + "\n"


class StreamRenderer:
    """Feed it raw stream lines (parsed JSON objects or text); it writes what terraform's human view would.

    `lines` scrubs output that arrives a line at a time (provisioners print one event per line), so a
    private key printed over many lines is hidden whole; without it each line is scrubbed alone.
    """

    def __init__(self, out: TextIO, err: TextIO, scrub: Callable[[str], str] = lambda s: s, *,
                 destroy: bool = False, color: bool = True, lines: LineScrubber | None = None) -> None:
        self.destroy = destroy
        self.out = out
        self.err = err
        self.scrub = scrub
        self.lines = lines
        self.color = Colorize(color)
        self.ops: dict[str, tuple[str, str]] = {}  # address -> (action, "id=..., " for progress lines)

    def _w(self, stream: TextIO, text: str, *, scrubbed: bool = False) -> None:
        stream.write(text if scrubbed else self.scrub(text))
        stream.flush()

    def _scrub_line(self, text: str, key: str) -> str:
        return self.lines.line(text, key) if self.lines is not None else self.scrub(text)

    def _line(self, fmt: str, *values: str) -> None:
        """colorize.Color(fmt), then Sprintf(values), then Println: as terraform's hooks do it."""
        coloured = self.color(fmt)
        for v in values:
            coloured = coloured.replace("%s", v.replace("%", "\0"), 1)
        self._w(self.out, coloured.replace("\0", "%") + "\n")

    def render(self, msg: Mapping[str, Any] | str, line: bytes | str | None = None) -> None:
        """`line`: the stream line `msg` was read from, for what its parsed form loses (exact numbers)."""
        if isinstance(msg, str):  # not JSON: terraform's crash output and the like
            self._w(self.out, self._scrub_line(msg.rstrip("\n"), "text") + "\n", scrubbed=True)
            return
        mtype = str(msg.get("type", ""))
        raw_hook = msg.get("hook")
        hook: Mapping[str, Any] = raw_hook if isinstance(raw_hook, Mapping) else {}
        raw_res = hook.get("resource")
        res: Mapping[str, Any] = raw_res if isinstance(raw_res, Mapping) else {}
        addr = str(res.get("addr", ""))
        if mtype == "apply_start":
            self._apply_start(addr, hook)
        elif mtype == "apply_progress":
            action, idpart = self.ops.get(addr, (str(hook.get("action", "")), ""))
            secs = int(hook.get("elapsed_seconds") or 0)
            if action in _STILL:
                self._line("[reset][bold]%s: %s [%s%s elapsed][reset]", addr, _STILL[action], idpart,
                           f"{secs // 60:02d}m{secs % 60:02d}s")
        elif mtype == "apply_complete":
            action = self.ops.pop(addr, (str(hook.get("action", "")), ""))[0]
            ident = f" [{hook['id_key']}={hook['id_value']}]" if hook.get("id_key") and hook.get("id_value") else ""
            if action in _DONE:
                self._line("[reset][bold]%s: %s after %s%s", addr, _DONE[action],
                           _duration(hook.get("elapsed_seconds")), ident)
        elif mtype == "apply_errored":
            self.ops.pop(addr, None)
        elif mtype == "provision_start":
            self._line("[reset][bold]%s: Provisioning with '%s'...[reset]", addr, str(hook.get("provisioner", "")))
        elif mtype == "provision_progress":
            self._provision_output(addr, hook)
        elif mtype == "refresh_start":
            ident = f" [{hook['id_key']}={hook['id_value']}]" if hook.get("id_key") and hook.get("id_value") else ""
            self._line("[reset][bold]%s: Refreshing state...%s", addr, ident)
        elif mtype == "diagnostic" and isinstance(msg.get("diagnostic"), Mapping):
            diag = msg["diagnostic"]
            stream = self.err if diag.get("severity") == "error" else self.out
            self._w(stream, diagnostic_text(diag, self.color, columns(self.err)))
        elif mtype == "change_summary":
            self._summary(msg)
        elif mtype == "outputs" and isinstance(msg.get("outputs"), Mapping) and msg["outputs"]:
            outputs = (exact_outputs(line) if line is not None else None) or msg["outputs"]
            self._w(self.out, self.color("[reset][bold][green]\nOutputs:\n\n") + outputs_text(outputs))

    def _apply_start(self, addr: str, hook: Mapping[str, Any]) -> None:
        action = str(hook.get("action", ""))
        has_id = bool(hook.get("id_key") and hook.get("id_value"))
        self.ops[addr] = (action, f"{hook['id_key']}={str(hook['id_value'])[:80]}, " if has_id else "")
        if action in _START:
            self._line("[reset][bold]%s: %s%s[reset]", addr, _START[action],
                       f" [{hook['id_key']}={hook['id_value']}]" if has_id else "")

    def _provision_output(self, addr: str, hook: Mapping[str, Any]) -> None:
        prefix = self.color("[reset][bold]%s (%s):[reset] ").replace("%s", addr, 1).replace(
            "%s", str(hook.get("provisioner", "")), 1)
        key = f"{addr}\x00{hook.get('provisioner') or ''}\x00output"
        for line in str(hook.get("output", "")).splitlines():
            line = line.rstrip()
            if line:
                self._w(self.out, self.scrub(prefix) + self._scrub_line(line, key) + "\n", scrubbed=True)

    def _summary(self, msg: Mapping[str, Any]) -> None:
        raw = msg.get("changes")
        changes: Mapping[str, Any] = raw if isinstance(raw, Mapping) else {}
        if self.destroy or changes.get("operation") == "destroy":
            # a saved destroy plan reports as an apply; terraform destroy words it like this
            text = f"\nDestroy complete! Resources: {changes.get('remove', 0)} destroyed.\n"
        elif changes.get("operation") == "apply" or "add" in changes:
            text = (f"\nApply complete! Resources: {changes.get('add', 0)} added, {changes.get('change', 0)} "
                    f"changed, {changes.get('remove', 0)} destroyed.\n")
        else:
            return
        self._w(self.out, self.color("[reset][bold][green]\0").replace("\0", text))
