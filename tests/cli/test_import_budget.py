"""Start-up stays fast: each command imports only what it uses.

Every command runs in a fresh interpreter exactly as a user starts it (`python -m tfaudit
...`); at exit the child writes the names in sys.modules, and the test fails on any module
on that command's deny list. (`-X importtime` cannot see modules loaded through
importlib.import_module, which is how the CLI registers its commands.)
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tfaudit.cli.app import app

# Costly libraries (each 0.05-0.3 s to import) that no command may load unless it needs them.
HEAVY = ("boto3", "botocore", "rich", "pydantic", "structlog", "jsonschema")
# What `--help` and usage errors may not load either: the implementation behind the command.
HELP_DENY = (*HEAVY, "cryptography", "fastjsonschema", "jsonschema_rs", "nacl", "hcl2", "lark", "tfaudit.trail", "tfaudit.run",
             "tfaudit.analysis", "tfaudit.parse", "tfaudit.sinks", "tfaudit.config", "tfaudit.redact")

_CHILD = """
import atexit, json, runpy, sys
out = sys.argv.pop(1)
atexit.register(lambda: open(out, "w").write(json.dumps(sorted(sys.modules))))
sys.argv[0] = "tfaudit"
runpy.run_module("tfaudit", run_name="__main__", alter_sys=True)
"""


def imported(tmp_path: Path, *args: str, cwd: Path | None = None, env: dict[str, str] | None = None) -> tuple[int, set[str]]:
    """Run `tfaudit ARGS` in a fresh interpreter; its exit code and every module it imported."""
    out = tmp_path / f"modules-{len(list(tmp_path.glob('modules-*')))}.json"
    keep = {k: v for k, v in os.environ.items() if k in ("PATH", "LANG", "LC_ALL", "TMPDIR", "PYTHONPATH", "HOME")}
    res = subprocess.run([sys.executable, "-c", _CHILD, str(out), *args], cwd=cwd or tmp_path,
                         env={**keep, "TF_IN_AUTOMATION": "1", "CHECKPOINT_DISABLE": "1", **(env or {})},
                         capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL)
    assert out.exists(), res.stderr[-2000:]
    return res.returncode, set(json.loads(out.read_text()))


def denied(modules: set[str], deny: tuple[str, ...]) -> list[str]:
    return sorted(m for m in modules if any(m == d or m.startswith(d + ".") for d in deny))


def command_paths() -> list[tuple[str, ...]]:
    """Every command and subcommand the CLI registers, as argv prefixes."""
    import typer.main

    root = typer.main.get_command(app)
    paths: list[tuple[str, ...]] = []

    def walk(cmd: object, prefix: tuple[str, ...]) -> None:
        for name, sub in sorted(getattr(cmd, "commands", {}).items()):
            paths.append((*prefix, name))
            walk(sub, (*prefix, name))

    walk(root, ())
    return paths


def test_every_command_is_covered() -> None:
    names = {p[0] for p in command_paths()}
    assert {"apply", "plan", "analyze", "verify", "log", "report", "keygen"} <= names


@pytest.mark.parametrize("path", [(), *command_paths()], ids=lambda p: " ".join(p) or "tfaudit")
def test_help_imports_no_implementation(tmp_path: Path, path: tuple[str, ...]) -> None:
    rc, modules = imported(tmp_path, *path, "--help")
    assert rc == 0
    assert denied(modules, HELP_DENY) == []


def test_usage_error_imports_no_implementation(tmp_path: Path) -> None:
    rc, modules = imported(tmp_path, "verfy")  # a typo of tfaudit's own (other commands are terraform's)
    assert rc == 64
    assert denied(modules, tuple(d for d in HELP_DENY if d != "tfaudit.redact")) == []  # the message is scrubbed


PLAN = {"format_version": "1.2", "terraform_version": "1.11.4", "resource_changes": [
    {"address": "aws_security_group.web", "mode": "managed", "type": "aws_security_group", "name": "web",
     "provider_name": "registry.terraform.io/hashicorp/aws",
     "change": {"actions": ["create"], "before": None, "after": {"ingress": [
         {"cidr_blocks": ["0.0.0.0/0"], "from_port": 22, "to_port": 22, "protocol": "tcp"}]}}}]}


def test_analyze_imports_no_signing_no_logging_no_aws(tmp_path: Path) -> None:
    plan = tmp_path / "plan.json"
    plan.write_text(json.dumps(PLAN))
    rc, modules = imported(tmp_path, "analyze", "--format", "json", str(plan))
    assert rc == 0
    assert "tfaudit.analysis.engine" in modules  # it did analyse
    assert denied(modules, (*HEAVY, "cryptography", "fastjsonschema", "jsonschema_rs", "nacl", "hcl2", "lark", "tfaudit.trail",
                            "tfaudit.run", "tfaudit.sinks")) == []


def _ledger(tmp_path: Path) -> tuple[Path, Path]:
    from trail_factory import Res, add_run

    from tfaudit.trail.signing import generate_keypair, load_signer

    key, pub = generate_keypair(tmp_path / "k" / "key")
    ledger = tmp_path / "ledger.jsonl"
    add_run(ledger, load_signer(key), time="2026-01-01T00:00:00Z", resources=[Res("terraform_data.a")])
    return ledger, pub


def test_reading_commands_import_no_aws_no_logging(tmp_path: Path) -> None:
    ledger, pub = _ledger(tmp_path)
    for args in (("verify", str(ledger), "--public-key", str(pub)), ("log", str(ledger)),
                 ("history", "terraform_data.a", "--ledger", str(ledger))):
        rc, modules = imported(tmp_path, *args)
        assert rc == 0, args
        assert denied(modules, (*HEAVY, "hcl2", "lark", "tfaudit.run", "tfaudit.sinks", "tfaudit.analysis")) == [], args


def test_keygen_imports_no_aws_no_logging(tmp_path: Path) -> None:
    rc, modules = imported(tmp_path, "keygen", str(tmp_path / "key"))
    assert rc == 0
    assert "cryptography" in modules
    assert denied(modules, (*HEAVY, "hcl2", "lark", "tfaudit.run", "tfaudit.sinks", "tfaudit.analysis")) == []


@pytest.mark.slow
@pytest.mark.terraform
def test_apply_with_the_local_ledger_imports_no_aws_no_rich_no_logging(
        tmp_path: Path, tf_workdir: object, base_env: dict[str, str]) -> None:
    from conftest import require_terraform

    require_terraform()
    work = tf_workdir("quickstart")  # type: ignore[operator]
    rc, modules = imported(tmp_path, "apply", "-auto-approve", cwd=work, env=base_env)
    assert rc == 0
    assert "tfaudit.trail.ledger" in modules  # it did record
    assert denied(modules, HEAVY) == []


_PREPARE = """
import sys, threading
from pathlib import Path
from tfaudit.config import parse_config
from tfaudit.sinks.delivery import prepare
cfg = parse_config(Path(sys.argv[1]))
prepare(Path(sys.argv[2]), cfg.section("sink"), None, print)
for t in threading.enumerate():
    if t.name == "tfaudit-aws-warm":
        t.join()
print("boto3" in sys.modules)
"""


@pytest.mark.parametrize(("sink", "imports_boto3"), [
    ('sink "s3" "archive" {\n  bucket = "audit-bucket"\n}\n', True),
    ('sink "webhook" "siem" {\n  url = "http://127.0.0.1:9/in"\n  secret_env = "S"\n}\n', False),
])
def test_an_aws_sink_starts_importing_boto3_before_terraform_runs(tmp_path: Path, sink: str, imports_boto3: bool) -> None:
    cfg = tmp_path / ".tfaudit.hcl"
    cfg.write_text(sink)
    res = subprocess.run([sys.executable, "-c", _PREPARE, str(cfg), str(tmp_path / "ledger.jsonl")],
                         capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr[-2000:]
    assert res.stdout.strip().splitlines()[-1] == str(imports_boto3)
