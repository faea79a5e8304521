"""tfaudit analyze: what is dangerous in a plan, as a table, Markdown, JSON or SARIF; a gate with --fail-on."""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Optional

import typer

from tfaudit.cli import _choices
from tfaudit.errors import ExitCode, UsageError


def resolve_fail_on(option: str | None, env: Mapping[str, str], settings_fail_on: object) -> str | None:
    """--fail-on, else TFAUDIT_FAIL_ON, else the config's fail_on."""
    value = option or env.get("TFAUDIT_FAIL_ON") or (str(settings_fail_on) if settings_fail_on else None)
    return None if value is None else _choices.fail_on(value)


commands = typer.Typer()  # this module's commands, added to the root app by tfaudit.cli.app


@commands.command()
def analyze(
    ctx: typer.Context,
    plan: Optional[str] = typer.Argument(None, help="Plan JSON ('terraform show -json'), a saved plan file, or - for stdin."),
    fmt: Any = typer.Option("table", "--format", parser=_choices.output_format, metavar="FORMAT", help="table, markdown, json or sarif."),
    fail_on: Optional[str] = typer.Option(None, "--fail-on", parser=_choices.fail_on, metavar="SEVERITY", help="Exit 5 when a finding at or above this "
                                          "severity exists: low, medium, high or critical (env TFAUDIT_FAIL_ON)."),
    config: Optional[str] = typer.Option(None, "--config", envvar="TFAUDIT_CONFIG",
                                         help="Config file with rules and waivers (default: .tfaudit.hcl here)."),
    tf_path: Optional[str] = typer.Option(None, "--tf-path", envvar="TFAUDIT_TF_PATH",
                                          help="terraform/tofu binary, for saved binary plans."),
    list_rules: bool = typer.Option(False, "--list-rules", help="List the rules (built-in and custom) and exit."),
) -> int:
    """Risk findings for a plan; exit 5 when a deny rule matches or --fail-on is reached."""
    from tfaudit.analysis import analyse_input
    from tfaudit.analysis.engine import Analyzer
    from tfaudit.analysis.policy import Policy
    from tfaudit.analysis.formats import OutputFormat, render
    from tfaudit.config import load_config

    obj = ctx.obj if isinstance(ctx.obj, dict) else {}
    chdir = obj.get("chdir")
    work_dir = Path(chdir).resolve() if chdir else Path.cwd()
    cfg = load_config(config, work_dir)
    policy = Policy.from_config(cfg)
    analyzer = Analyzer(policy)
    if list_rules:
        for info in analyzer.info.values():
            typer.echo(f"{info.id:<34} {info.severity:<8} {info.effect:<5} {info.category:<12} {info.why}")
        return 0
    if plan is None:
        raise UsageError("no plan given", hint="pass a plan JSON file, a saved plan, or - for stdin")
    gate_on = resolve_fail_on(fail_on, os.environ, policy.settings.fail_on)
    report = analyse_input(plan, analyzer, env=os.environ, tf_path=tf_path, chdir=chdir)
    out = sys.stdout
    render(fmt, report, out, fail_on=gate_on, rules=analyzer.info, config_dir=work_dir)
    out.flush()
    gate = report.gate(gate_on)
    if gate.blocked:
        if fmt in (OutputFormat.JSON, OutputFormat.SARIF):  # the table and Markdown already say why
            sys.stderr.write(f"tfaudit: blocked by policy: {gate.reason()}\n")
        return int(ExitCode.POLICY)
    return 0
