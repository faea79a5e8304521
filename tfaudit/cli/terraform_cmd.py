"""terraform's own commands through tfaudit: handed over unchanged, and `version`/`-help` with tfaudit's line."""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping

from tfaudit.terraform.args import Handler, Route


def answer(where: Route, chdir: str | None, env: Mapping[str, str], *, replace: bool) -> int:
    from tfaudit import __version__
    from tfaudit.terraform import proc
    from tfaudit.terraform.binary import find_binary

    path, _tool = find_binary(None, env)
    argv = [path, *([f"-chdir={chdir}"] if chdir is not None else [])]
    if where.handler is Handler.TERRAFORM:
        return proc.hand_over([*argv, *where.args], env, replace=replace)
    if where.handler is Handler.HELP:
        res = proc.run([*argv, "-help", *where.args], env=env)
        sys.stdout.write(res.stdout.decode("utf-8", "replace"))
        sys.stderr.write(res.stderr.decode("utf-8", "replace"))
        if not where.args:
            sys.stdout.write("\ntfaudit records apply, plan, destroy, import, taint, untaint, state and drift;\n"
                             "its own commands (verify, log, history, ...): tfaudit --help\n")
        return res.returncode
    res = proc.run([*argv, "version", *where.args], env=env)  # Handler.VERSION
    out = res.stdout.decode("utf-8", "replace")
    if res.ok and "-json" in where.args:
        doc = json.loads(out)
        doc["tfaudit_version"] = __version__
        out = json.dumps(doc, indent=2) + "\n"
    elif res.ok:
        out += f"tfaudit v{__version__}\n"
    sys.stdout.write(out)
    sys.stderr.write(res.stderr.decode("utf-8", "replace"))
    return res.returncode
