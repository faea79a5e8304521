"""Risk analysis of terraform plans: built-in rules, rules as code, gates and reports.

`engine` runs the rules (`builtin`, plus custom rules and waivers from `policy`) over a
plan, streamed by `stream` when it is a plain JSON file; `render` turns the report into
a terminal table, Markdown, JSON or SARIF; `runhook` plugs the same analysis into
`tfaudit apply` and `tfaudit plan`.
"""

from __future__ import annotations

from pathlib import Path
from collections.abc import Mapping
from typing import TYPE_CHECKING, BinaryIO

if TYPE_CHECKING:
    from tfaudit.analysis.engine import Analyzer, AnalysisReport

ZIP_MAGIC = b"PK\x03\x04"


def analyse_input(source: str, analyzer: Analyzer, *, env: Mapping[str, str], tf_path: str | None = None,
                  chdir: str | None = None, stdin: BinaryIO | None = None) -> AnalysisReport:
    """A plan JSON file, a saved binary plan (through `terraform show -json`), or `-` for stdin."""
    from tfaudit.analysis.engine import analyse_bytes, analyse_file
    from tfaudit.errors import PlanError

    hint = "pass the output of 'terraform show -json PLANFILE', a saved plan file, or - for stdin"
    if source == "-":
        import sys

        stream = stdin if stdin is not None else sys.stdin.buffer
        data = stream.read()
        if data.startswith(ZIP_MAGIC):
            raise PlanError("<stdin>: is a saved binary plan; terraform needs it as a file", hint="pass the plan file's path")
        return analyse_bytes(data, analyzer, "<stdin>")
    path = Path(source)
    if chdir and not path.is_absolute():
        path = Path(chdir) / path
    try:
        with path.open("rb") as f:
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
