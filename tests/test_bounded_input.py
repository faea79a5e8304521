"""Input tfaudit does not control is read in bounded memory, or refused at once (issue 10, item 10).

Each case: a one-line error naming the problem, the documented exit code (64 bad input,
4 for a signing key: the trail cannot be written), no hang. The
generous subprocess timeouts only stop a hung test; they are not timing targets.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from conftest import CliResult
from tfaudit.trail.checkpoints import S3Store, store_from_location
from tfaudit.trail.signing import generate_keypair


def _one_line_error(res: CliResult, *needles: str, code: int = 64) -> None:
    assert res.returncode == code, res.output
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("tfaudit: error: "), res.stderr
    assert "Traceback" not in res.output
    for n in needles:
        assert n in lines[0], lines[0]


# A fresh intermediary process has exactly one child, so its RUSAGE_CHILDREN peak is that
# child's own peak (pytest's own RUSAGE_CHILDREN keeps the largest child it ever waited for).
_MEASURE = ("import resource, subprocess, sys; r = subprocess.run(sys.argv[1:], capture_output=True); "
            "sys.stderr.buffer.write(r.stderr); sys.stdout.buffer.write(r.stdout); "
            "sys.stdout.write('\\n%d\\n' % resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss); "
            "sys.exit(r.returncode)")


def _run_measured(argv: list[str], env: dict[str, str]) -> tuple[CliResult, float]:
    """Run argv; return its result and its own peak resident memory in MiB."""
    res = subprocess.run([sys.executable, "-c", _MEASURE, *argv], capture_output=True, text=True, env=env,
                         timeout=300)
    out, _, peak_kib = res.stdout.rstrip("\n").rpartition("\n")
    return CliResult(res.returncode, out, res.stderr), int(peak_kib) / 1024


def test_analyze_refuses_dev_zero_at_once(run_tfaudit: Callable[..., CliResult]) -> None:
    res = run_tfaudit("analyze", "/dev/zero", timeout=60)
    _one_line_error(res, "/dev/zero: not JSON (byte 0x00 at offset 0)")


def test_analyze_refuses_zeros_on_stdin(tmp_path: Path, base_env: dict[str, str]) -> None:
    with open("/dev/zero", "rb") as zero:
        res = subprocess.run([sys.executable, "-m", "tfaudit", "analyze", "-"], stdin=zero, capture_output=True,
                             text=True, env=base_env, timeout=60)
    _one_line_error(CliResult(res.returncode, res.stdout, res.stderr), "<stdin>: not JSON")


def test_a_plan_of_whitespace_is_empty_and_read_in_a_window(tmp_path: Path, base_env: dict[str, str]) -> None:
    plan = tmp_path / "plan.json"
    with plan.open("wb") as f:
        block = b" \n\t" * (1 << 20)
        for _ in range(100):  # 300 MiB of whitespace
            f.write(block)
    res, peak_mib = _run_measured([sys.executable, "-m", "tfaudit", "analyze", str(plan)], base_env)
    _one_line_error(res, f"{plan}: is empty")
    assert peak_mib < 200, f"peak {peak_mib:.0f} MiB for a 300 MiB file"


def test_a_config_over_the_limit_is_refused(tmp_path: Path, run_tfaudit: Callable[..., CliResult]) -> None:
    cfg = tmp_path / ".tfaudit.hcl"
    rule = 'rule "r{}" {{\n  message = "m"\n  resource_types = ["aws_db_*"]\n  actions = ["delete"]\n}}\n'
    cfg.write_text("".join(rule.format(i) for i in range(3000)))
    assert cfg.stat().st_size > 128 * 1024
    res = run_tfaudit("config", "validate", "--config", str(cfg), timeout=60)
    _one_line_error(res, f"config file {cfg} is", "over the 128 KiB limit")


def test_a_config_that_is_a_fifo_is_refused_at_once(tmp_path: Path, run_tfaudit: Callable[..., CliResult]) -> None:
    fifo = tmp_path / "cfg.hcl"
    os.mkfifo(fifo)
    res = run_tfaudit("config", "validate", "--config", str(fifo), timeout=60)
    _one_line_error(res, "is a FIFO, not a regular file")


def test_a_signing_key_that_is_a_fifo_is_refused_at_once(tmp_path: Path, run_tfaudit: Callable[..., CliResult],
                                                         keypair: tuple[Path, Path]) -> None:
    fifo = tmp_path / "key"
    os.mkfifo(fifo, 0o600)
    ledger = tmp_path / "ledger.jsonl"
    ledger.write_bytes(b"")
    res = run_tfaudit("export", "--format", "in-toto", "--signing-key", str(fifo), str(ledger), timeout=60)
    _one_line_error(res, f"signing key {fifo} is not a regular file", code=4)  # 4: the trail cannot be signed


@pytest.mark.parametrize("what", ["fifo", "device"])
def test_a_public_key_that_is_not_a_file_is_refused_at_once(tmp_path: Path, run_tfaudit: Callable[..., CliResult],
                                                            what: str) -> None:
    pub = tmp_path / "key.pub"
    if what == "fifo":
        os.mkfifo(pub)
    else:
        pub = Path("/dev/zero")
    ledger = tmp_path / "ledger.jsonl"
    ledger.write_bytes(b"")
    res = run_tfaudit("verify", str(ledger), "--public-key", str(pub), timeout=60)
    _one_line_error(res, f"public key {pub} is a {'FIFO' if what == 'fifo' else 'device'}, not a regular file")


def test_a_huge_public_key_file_is_refused(tmp_path: Path, run_tfaudit: Callable[..., CliResult]) -> None:
    _, pub = generate_keypair(tmp_path / "key")
    with pub.open("ab") as f:
        f.truncate(2**30)  # sparse: a gigabyte that would otherwise be read whole
    res = run_tfaudit("verify", str(tmp_path / "ledger.jsonl"), "--public-key", str(pub), timeout=60)
    _one_line_error(res, "is 1024 MiB, over the 64 KiB limit")


@pytest.mark.parametrize("location, prefix", [
    ("s3://bucket/../../x", "__/__/x/"),
    ("s3://bucket/a//b/./c", "a/b/_/c/"),
    ("s3://bucket/", ""),
    ("s3://bucket/audit", "audit/"),
])
def test_checkpoint_prefixes_are_cleaned_like_sink_prefixes(location: str, prefix: str) -> None:
    store = store_from_location(location, {})
    assert isinstance(store, S3Store) and store.prefix == prefix
    assert store.describe() == f"s3://bucket/{prefix}"


def test_checkpoint_prefix_from_config_is_cleaned(tmp_path: Path) -> None:
    from tfaudit.config import load_config

    (tmp_path / ".tfaudit.hcl").write_text(
        'checkpoints {\n  destination "s3" {\n    bucket = "audit-bucket"\n    prefix = "../../other"\n  }\n}\n')
    cfg = load_config(None, tmp_path)
    stores = cfg.section("checkpoints").stores({})
    assert [s.prefix for s in stores if isinstance(s, S3Store)] == ["__/__/other/"]
