"""One way to read: every reading command takes `--ledger LEDGER` and `--format json`, the same way.

A real signed ledger (built quickly, no terraform) at a path that is not the default, read by
the real CLI in a subprocess; the default ledger and the default key are used when nothing is given.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from conftest import CliResult, on_a_terminal
from trail_factory import Res, add_run
from tfaudit.trail.signing import generate_keypair, load_signer


@pytest.fixture
def trail(tmp_path: Path) -> dict[str, Any]:
    key, pub = generate_keypair(tmp_path / "keys" / "signing-key")
    ledger = tmp_path / "trails" / "team.jsonl"
    signer = load_signer(key)
    add_run(ledger, signer, time="2026-11-01T10:00:00.000000Z", resources=[Res("terraform_data.app[0]", "create"),
                                                                          Res("terraform_data.app[1]", "create")])
    add_run(ledger, signer, time="2026-11-02T10:00:00.000000Z", actor="bob",
            resources=[Res("terraform_data.app[1]", "update", status="failed", error="boom")], status="partial")
    work = tmp_path / "work"
    work.mkdir()
    (work / ".tfaudit.hcl").write_text(f'sink "file" "mirror" {{\n  path = "{tmp_path / "mirror.jsonl"}"\n}}\n')
    return {"ledger": ledger, "key": key, "pub": pub, "work": work, "tmp": tmp_path}


def _json(res: CliResult) -> Any:
    assert res.returncode in (0, 2), res.output
    return json.loads(res.stdout)


READS: dict[str, tuple[str, ...]] = {
    "log": ("log",),
    "history": ("history", "terraform_data.app"),
    "verify": ("verify",),
    "report": ("report",),
    "status": ("status",),
    "flush": ("flush",),
}


@pytest.mark.parametrize("command", list(READS))
def test_every_reading_command_takes_ledger_and_format_json(command: str, trail: dict[str, Any],
                                                           run_tfaudit: Callable[..., CliResult]) -> None:
    argv = [*READS[command], "--ledger", str(trail["ledger"]), "--format", "json"]
    if command in ("verify", "report"):
        argv += ["--public-key", str(trail["pub"])]
    doc = _json(run_tfaudit(*argv, cwd=trail["work"]))
    if command == "log":
        assert [r["actor"] for r in doc] == ["bob", "alice"]
    elif command == "history":  # no index: every instance, as in terraform
        assert sorted({c["address"] for c in doc}) == ["terraform_data.app[0]", "terraform_data.app[1]"]
    elif command == "verify":
        assert doc["ok"] is True and doc["records"] == 7
    elif command == "report":
        assert doc["runs"] == 2 and doc["verification"][0]["state"] == "verified"
        assert doc["out_of_band"] == [] and doc["failed"][0]["address"] == "terraform_data.app[1]"
    elif command == "status":
        assert doc["ledger"] == str(trail["ledger"]) and doc["sinks"][0]["sink"] == "file.mirror"
    else:
        assert doc["pending"] == 0


@pytest.mark.parametrize("command", list(READS))
def test_every_reading_command_defaults_to_the_ledger_here(command: str, trail: dict[str, Any],
                                                          run_tfaudit: Callable[..., CliResult]) -> None:
    """No --ledger: the ledger apply would write here (.tfaudit/ledger.jsonl), and verify's key is the
    public half of the key tfaudit signs with (TFAUDIT_SIGNING_KEY's .pub)."""
    (trail["work"] / ".tfaudit").mkdir()
    shutil.copy(trail["ledger"], trail["work"] / ".tfaudit" / "ledger.jsonl")
    res = run_tfaudit(*READS[command], "--format", "json", cwd=trail["work"],
                      env={"TFAUDIT_SIGNING_KEY": str(trail["key"])})
    doc = _json(res)
    assert doc, res.output
    if command == "verify":
        assert doc["ok"] is True


def test_verify_without_a_key_anywhere_names_the_fix(trail: dict[str, Any], run_tfaudit: Callable[..., CliResult]) -> None:
    res = run_tfaudit("verify", "--ledger", str(trail["ledger"]), cwd=trail["work"],
                      env={"TFAUDIT_SIGNING_KEY": str(trail["tmp"] / "nokey")})
    assert res.returncode == 64 and "no public key given, and none at" in res.stderr and "--public-key" in res.stderr


def test_help_placeholders_are_words(run_tfaudit: Callable[..., CliResult]) -> None:
    for command in (*READS, "export", "drift", "analyze", "ci comment"):
        out = run_tfaudit(*command.split(), "--help").stdout
        for bad in ("<str>", "<int", "<float", "<path>", "<list", "[str]"):
            assert bad not in out, (command, bad)


def test_shell_completion_completes_commands(run_tfaudit: Callable[..., CliResult]) -> None:
    res = run_tfaudit(env={"_TFAUDIT_COMPLETE": "complete_bash", "COMP_WORDS": "tfaudit hist", "COMP_CWORD": "1"})
    assert res.stdout.split() == ["history"]
    assert "--install-completion" in run_tfaudit("--help").stdout


def _drawn(args: list[str], cwd: Path, env: dict[str, str]) -> str:
    """What the CLI draws with stderr on a pseudo-terminal (as a person sees it); it must succeed."""
    res = on_a_terminal(args, env=env, cwd=cwd)
    assert res.returncode == 0, res.drawn
    return res.drawn


def test_progress_bars_track_verify_export_and_report_to_the_end(tmp_path: Path, base_env: dict[str, str]) -> None:
    key, pub = generate_keypair(tmp_path / "k" / "key")
    ledger = tmp_path / "big.jsonl"
    signer = load_signer(key)
    for i in range(300):
        add_run(ledger, signer, time=f"2026-11-01T{10 + i // 3600:02d}:{i // 60 % 60:02d}:{i % 60:02d}.000000Z",
                resources=[Res(f"terraform_data.r{i}[{j}]", "update") for j in range(3)])
    assert ledger.stat().st_size > 256 * 1024
    drawn = _drawn(["verify", "--ledger", str(ledger), "--public-key", str(pub)], tmp_path, base_env)
    assert "verifying [" in drawn and "100.0%" in drawn
    drawn = _drawn(["export", str(ledger), "--format", "ocsf", "-o", str(tmp_path / "x.jsonl")], tmp_path, base_env)
    assert "exporting [" in drawn and "100.0%" in drawn
    drawn = _drawn(["report", "--ledger", str(ledger), "--public-key", str(pub), "--html", str(tmp_path / "r.html")],
                   tmp_path, base_env)
    frames = [f for f in drawn.split("\r") if "reading ledgers [" in f]
    percents = [float(f.split("%")[0].split()[-1]) for f in frames]
    # one bar for reading and verifying: it starts below 100%, never goes back, and ends at 100%
    # (how many frames fall in between depends on the machine's speed: the bar redraws on a clock)
    assert percents[0] < 100.0 and percents == sorted(percents) and percents[-1] == 100.0, percents


def test_log_has_a_header_and_colour_on_a_terminal_and_is_plain_when_piped(trail: dict[str, Any],
                                                                         base_env: dict[str, str]) -> None:
    import subprocess
    import sys

    argv = ["log", "--ledger", str(trail["ledger"])]
    piped = subprocess.run([sys.executable, "-m", "tfaudit", *argv], env=base_env, capture_output=True, text=True,
                           timeout=60).stdout
    assert piped.splitlines()[0].startswith("2026-11-02 10:00:00Z  bob") and "\x1b[" not in piped
    text = on_a_terminal(argv, env=base_env, stream="stdout", timeout=60).drawn
    assert "TIME" in text.splitlines()[0] and "OUTCOME" in text.splitlines()[0]
    assert "\x1b[32msucceeded" in text and "\x1b[33mpartial" in text


@pytest.mark.slow
@pytest.mark.terraform
def test_drift_format_json_keeps_stdout_for_the_json(tf_workdir: Callable[[str], Path], keypair: tuple[Path, Path],
                                                     run_tfaudit: Callable[..., CliResult]) -> None:
    wd = tf_workdir("quickstart")
    env = {"TFAUDIT_SIGNING_KEY": str(keypair[0])}
    assert run_tfaudit("apply", "-auto-approve", cwd=wd, env=env).returncode == 0
    res = run_tfaudit("drift", "--format", "json", cwd=wd, env=env)
    assert res.returncode == 0, res.output
    doc = json.loads(res.stdout)  # terraform's own output went to stderr
    assert doc["exit_code"] == 0 and doc["drifted"] == [] and doc["ledger"].endswith("ledger.jsonl")
    assert "No changes" in res.stderr or "no drift" in res.stderr.lower()


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["s3", "postgresql"])
def test_reading_commands_take_a_store_url(kind: str, request: pytest.FixtureRequest, tmp_path: Path,
                                           moto_server: Any, run_tfaudit: Callable[..., CliResult]) -> None:
    from tfaudit.trail.store import open_store

    env = {**moto_server.aws_env()}
    if kind == "s3":
        url = str(request.getfixturevalue("s3_ledger_url"))
    else:
        url = str(request.getfixturevalue("pg_url"))
        open_store(url).init()  # type: ignore[attr-defined]
    key, pub = generate_keypair(tmp_path / "k" / "key")
    import os

    store = open_store(url, {**os.environ, **env})
    add_run(store, load_signer(key), time="2026-11-01T10:00:00.000000Z",
            resources=[Res("terraform_data.app[0]", "create"), Res("terraform_data.app[1]", "create")])
    log = _json(run_tfaudit("log", "--ledger", url, "--format", "json", cwd=tmp_path, env=env))
    assert [r["actor"] for r in log] == ["alice"]
    hist = _json(run_tfaudit("history", "terraform_data.app", "--ledger", url, "--format", "json", cwd=tmp_path, env=env))
    assert len(hist) == 2
    rep = _json(run_tfaudit("report", "--ledger", url, "--format", "json", cwd=tmp_path, env=env))
    assert rep["runs"] == 1
    ver = _json(run_tfaudit("verify", "--ledger", url, "--public-key", str(pub), "--format", "json", cwd=tmp_path, env=env))
    assert ver["ok"] is True
