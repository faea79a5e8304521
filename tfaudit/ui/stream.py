"""Turn terraform's `apply -json` stream back into the readable lines a user expects.

Each event carries terraform's own human message; we print it as terraform would,
diagnostics in full on stderr, outputs with sensitive values hidden.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any, TextIO

from tfaudit.redact import LineScrubber

_QUIET = frozenset({"version", "planned_change", "resource_drift", "apply_progress_quiet"})


def _diagnostic_text(diag: Mapping[str, Any]) -> str:
    sev = str(diag.get("severity", "error")).capitalize()
    lines = ["", f"{sev}: {diag.get('summary', '')}"]
    rng = diag.get("range") if isinstance(diag.get("range"), Mapping) else None
    snippet = diag.get("snippet") if isinstance(diag.get("snippet"), Mapping) else None
    if rng:
        start = rng.get("start") or {}
        where = f"  on {rng.get('filename')} line {start.get('line')}"
        if snippet and snippet.get("context"):
            where += f", in {snippet['context']}"
        lines += ["", where + ":"]
        if snippet and snippet.get("code") is not None:
            lines.append(f"  {snippet.get('start_line', start.get('line'))}: {snippet['code']}")
    if diag.get("detail"):
        lines += ["", str(diag["detail"])]
    lines.append("")
    return "\n".join(lines)


def hcl_value(value: Any, indent: int = 0) -> str:
    """A value the way terraform prints outputs: strings quoted, maps with `=`, one item a line."""
    pad = "  " * (indent + 1)
    if isinstance(value, Mapping):
        if not value:
            return "{}"
        width = max(len(json.dumps(str(k))) for k in value)
        items = [f"{pad}{json.dumps(str(k)):<{width}} = {hcl_value(v, indent + 1)}" for k, v in value.items()]
        return "{\n" + "\n".join(items) + "\n" + "  " * indent + "}"
    if isinstance(value, list):
        if not value:
            return "[]"
        return "[\n" + "\n".join(f"{pad}{hcl_value(v, indent + 1)}," for v in value) + "\n" + "  " * indent + "]"
    if value is None:
        return "null"
    return json.dumps(value)


def _outputs_text(outputs: Mapping[str, Any]) -> str:
    lines = ["", "Outputs:", ""]
    for name, o in sorted(outputs.items()):
        if not isinstance(o, Mapping):
            continue
        if o.get("sensitive"):
            value = "<sensitive>"
        elif "value" in o:
            value = hcl_value(o["value"])
        else:
            value = "(known after apply)"
        lines.append(f"{name} = {value}")
    return "\n".join(lines)


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
    """Feed it raw stream lines (parsed JSON objects or text); it writes readable output.

    `lines` scrubs output that arrives a line at a time (provisioners print one event per line), so a
    private key printed over many lines is hidden whole; without it each line is scrubbed alone.
    """

    def __init__(self, out: TextIO, err: TextIO, scrub: Callable[[str], str] = lambda s: s, *,
                 destroy: bool = False, lines: LineScrubber | None = None) -> None:
        self.destroy = destroy
        self.out = out
        self.err = err
        self.scrub = scrub
        self.lines = lines

    def _line(self, text: str, key: str) -> str:
        return self.lines.line(text, key) if self.lines is not None else self.scrub(text)

    def _w(self, stream: TextIO, text: str) -> None:
        stream.write(text + "\n")
        stream.flush()

    def render(self, msg: Mapping[str, Any] | str) -> None:
        if isinstance(msg, str):  # not JSON: terraform's crash output and the like
            self._w(self.out, self._line(msg.rstrip("\n"), "text"))
            return
        mtype = str(msg.get("type", ""))
        if mtype in _QUIET:
            return
        if mtype == "diagnostic" and isinstance(msg.get("diagnostic"), Mapping):
            diag = msg["diagnostic"]
            stream = self.err if diag.get("severity") == "error" else self.out
            self._w(stream, self.scrub(_diagnostic_text(diag)))
        elif mtype == "change_summary":
            raw_changes = msg.get("changes")
            changes: Mapping[str, Any] = raw_changes if isinstance(raw_changes, Mapping) else {}
            text = str(msg.get("@message", ""))
            if self.destroy and text.startswith("Apply complete!"):
                # a saved destroy plan reports as an apply; terraform destroy words it like this
                text = f"Destroy complete! Resources: {changes.get('remove', 0)} destroyed."
            self._w(self.out, "\n" + text)
        elif mtype == "outputs" and isinstance(msg.get("outputs"), Mapping):
            if msg["outputs"]:
                self._w(self.out, _outputs_text(msg["outputs"]))
        else:
            text = str(msg.get("@message", "")).rstrip("\n")
            if text:
                self._w(self.out, self._line(text, _stream_key(msg)))
