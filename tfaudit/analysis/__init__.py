"""Risk analysis of terraform plans: built-in rules, rules as code, gates and reports.

`engine` runs the rules (`builtin`, plus custom rules and waivers from `policy`) over a
plan, streamed by `stream` when it is a plain JSON file; `render` turns the report into
a terminal table, Markdown, JSON or SARIF; `runhook` plugs the same analysis into
`tfaudit apply` and `tfaudit plan`.
"""

from __future__ import annotations

import os
import re
import stat
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

if TYPE_CHECKING:
    from tfaudit.analysis.engine import Analyzer, AnalysisReport

ZIP_MAGIC = b"PK\x03\x04"


def analyse_input(source: str, analyzer: Analyzer, *, env: Mapping[str, str], tf_path: str | None = None,
                  chdir: str | None = None, stdin: BinaryIO | None = None) -> AnalysisReport:
    """A plan JSON file, a saved binary plan (through `terraform show -json`), or `-` for stdin."""
    from tfaudit.errors import PlanError

    try:
        return _analyse_input(source, analyzer, env=env, tf_path=tf_path, chdir=chdir, stdin=stdin)
    except RecursionError:  # values nested near the interpreter's limit: refused, never a crash
        raise PlanError(f"{source}: the plan's values nest too deep to analyse",
                        hint="pass the output of 'terraform show -json PLANFILE'") from None


def _analyse_input(source: str, analyzer: Analyzer, *, env: Mapping[str, str], tf_path: str | None,
                   chdir: str | None, stdin: BinaryIO | None) -> AnalysisReport:
    from tfaudit.analysis.engine import analyse_bytes, analyse_file
    from tfaudit.errors import PlanError

    hint = "pass the output of 'terraform show -json PLANFILE', a saved plan file, or - for stdin"
    if source == "-":
        import sys

        stream = stdin if stdin is not None else sys.stdin.buffer
        data = _read_whole(stream, "<stdin>", hint)
        if data.startswith(ZIP_MAGIC):
            raise PlanError("<stdin>: is a saved binary plan; terraform needs it as a file", hint="pass the plan file's path")
        return analyse_bytes(data, analyzer, "<stdin>")
    path = Path(source)
    if chdir and not path.is_absolute():
        path = Path(chdir) / path
    try:
        with path.open("rb") as f:
            if not stat.S_ISREG(os.fstat(f.fileno()).st_mode):  # a pipe or device: cannot be read twice
                return analyse_bytes(_read_whole(f, source, hint), analyzer, source)
            head = f.read(4)
    except IsADirectoryError:
        raise PlanError(f"{source}: is a directory", hint=hint) from None
    except OSError as e:
        raise PlanError(f"{source}: cannot read ({e.strerror or e.__class__.__name__})", hint=hint) from None
    if head.startswith(ZIP_MAGIC):
        from tfaudit.terraform.binary import detect

        tf = detect(tf_path, env, chdir)
        data = tf.show_json(path.resolve())
        return analyse_bytes(data, analyzer, source)
    return analyse_file(path, analyzer)


# How a JSON document (or what tfaudit unwraps into one) can begin: BOMs, whitespace, { [ or
# the setup-terraform wrapper. Anything else (e.g. /dev/zero's NULs) is refused at once.
_PLAUSIBLE_HEAD = re.compile(rb"(?:\xef\xbb\xbf|\xff\xfe|\xfe\xff|[ \t\r\n]*(?:[{\[]|$))")


def _read_whole(f: BinaryIO, source: str, hint: str) -> bytes:
    """A plan from a stream, read whole but bounded: refused at once when it cannot be JSON."""
    from tfaudit._bounded import MAX_WHOLE_DOCUMENT_BYTES, read_capped
    from tfaudit.errors import PlanError

    head = f.read(4096)
    if head and not head.startswith(ZIP_MAGIC) and not _PLAUSIBLE_HEAD.match(head):
        offset = len(head) - len(head.lstrip(b" \t\r\n"))
        raise PlanError(f"{source}: not JSON (byte 0x{head[offset]:02x} at offset {offset})", hint=hint)
    if len(head) < 4096:
        return head
    return head + read_capped(f, limit=MAX_WHOLE_DOCUMENT_BYTES - len(head), what=source, error=PlanError, hint=hint)
