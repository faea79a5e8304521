"""Fuzzing verify: mutated ledger lines never crash it (exit 3), every problem has a line number.

A real signed ledger is mutated by hypothesis (byte flips, truncations, insertions, deep
nesting, odd numbers, lone surrogates, duplicated or dropped lines) and checked through the
CLI entry point in-process. Each example is a ledger of many mutated lines (verify judges
each alone and goes on), so the count that matters is mutated lines: a few hundred in the
fast set, at least 10,000 in the slow test (CI runs the slow tests).
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from trail_factory import Res, add_run  # noqa: E402

from tfaudit.cli.app import main  # noqa: E402
from tfaudit.trail.signing import generate_keypair, load_signer  # noqa: E402

ODD = [b"NaN", b"-Infinity", b"Infinity", b"1e400", b"-1e400", b"1e-400", b"-0", b"9007199254740992",
       b"-9" * 30, b"1" * 5000, b"0.1e1", b"1E+2", b"00", b"\"\\ud800\"", b"\"\\udfff\\ud800\"", b"\"\\u0000\"",
       b"\"\xed\xa0\x80\"", b"\xff\xfe", b"true", b"null", b"{}", b"[]", b"\"\\", b"\n", b"\r", b"\x00"]


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> tuple[list[bytes], Path, Path]:
    d = tmp_path_factory.mktemp("fuzz")
    priv, pub = generate_keypair(d / "key")
    path = d / "ledger.jsonl"
    add_run(path, load_signer(priv), time="2026-01-02T03:04:05Z", resources=[Res("terraform_data.a")])
    return path.read_bytes().splitlines(keepends=True), pub, d


def _deep(depth: int, kind: int) -> bytes:
    if kind == 0:
        return b"[" * depth + b"]" * depth
    if kind == 1:
        return b'{"a":' * depth + b"1" + b"}" * depth
    return b"[" * depth  # never closed


def _mutate(draw: st.DrawFn, line: bytes) -> bytes:
    op = draw(st.sampled_from(["flip", "truncate", "insert", "odd", "deep", "replace_value"]))
    pos = draw(st.integers(0, max(0, len(line) - 1)))
    if op == "flip" and line:
        return line[:pos] + bytes([line[pos] ^ (1 << draw(st.integers(0, 7)))]) + line[pos + 1:]
    if op == "truncate":
        return line[:pos] + (b"\n" if draw(st.booleans()) else b"")
    if op == "insert":
        return line[:pos] + draw(st.binary(min_size=1, max_size=8)) + line[pos:]
    if op == "odd":
        return line[:pos] + draw(st.sampled_from(ODD)) + line[pos:]
    if op == "deep":
        depth = draw(st.sampled_from([127, 128, 129, 500, 990, 1000, 5000, 100_000]))
        return line[:pos] + _deep(depth, draw(st.integers(0, 2))) + line[pos:]
    colon = line.find(b":", pos)  # replace_value: a whole JSON value swapped for an odd one
    if colon < 0:
        return line
    end = min((j for j in (line.find(b",", colon), line.find(b"}", colon)) if j >= 0), default=len(line))
    return line[:colon + 1] + draw(st.sampled_from(ODD)) + line[end:]


@st.composite
def mutated_ledger(draw: st.DrawFn, lines: list[bytes], count: int) -> list[bytes]:
    """`count` mutated lines (one to three mutations each) among copies of the good ones."""
    out: list[bytes] = []
    for _ in range(count):
        line = draw(st.sampled_from(lines))
        for _ in range(draw(st.integers(1, 3))):
            line = _mutate(draw, line)
        if draw(st.booleans()):
            out.append(draw(st.sampled_from(lines)))  # good lines between bad ones, out of order
        out.append(line)
    return out


MUTATED = {"lines": 0}


def _check(lines: list[bytes], pub: Path, path: Path, capsys: pytest.CaptureFixture[str], readers: bool) -> None:
    path.write_bytes(b"".join(lines))
    capsys.readouterr()
    rc = main(["verify", str(path), "--public-key", str(pub)])
    out, err = capsys.readouterr()
    assert rc in (0, 1), (rc, err[-500:])
    assert "internal error" not in err, err[-500:]
    problems = [ln for ln in out.splitlines() if ln.startswith(f"{path}:")]
    assert all(ln.split(":", 2)[1].isdigit() for ln in problems), out[-500:]
    assert out.rstrip().splitlines()[-1].startswith("FAILED:" if rc else "OK:")
    if readers:
        for command in (["log", str(path)], ["history", "terraform_data.a", "--ledger", str(path)]):
            rc = main(command)
            _, err = capsys.readouterr()
            assert rc == 0 and "internal error" not in err, (command, err[-500:])


def _fuzz(examples: int, per_ledger: int, readers: bool):  # type: ignore[no-untyped-def]
    @settings(max_examples=examples, deadline=None, derandomize=True, database=None, print_blob=False,
              suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                     HealthCheck.data_too_large, HealthCheck.large_base_example])
    @given(data=st.data())
    def run(base: tuple[list[bytes], Path, Path], capsys: pytest.CaptureFixture[str], data: st.DataObject) -> None:
        lines, pub, d = base
        _check(data.draw(mutated_ledger(lines, per_ledger)), pub, d / "mutated.jsonl", capsys, readers)
        MUTATED["lines"] += per_ledger
    return run


def test_fuzzed_lines_never_crash_verify_or_readers(base: tuple[list[bytes], Path, Path],
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    MUTATED["lines"] = 0
    _fuzz(25, 12, readers=True)(base, capsys)
    assert MUTATED["lines"] >= 300


@pytest.mark.slow
def test_10000_fuzzed_lines_never_crash_verify(base: tuple[list[bytes], Path, Path],
                                               capsys: pytest.CaptureFixture[str]) -> None:
    MUTATED["lines"] = 0
    _fuzz(250, 40, readers=False)(base, capsys)
    assert MUTATED["lines"] >= 10_000


def _strictly(line: bytes) -> tuple[str, str]:
    """What the strict decoder alone makes of a line: its value written back, or its fault and message."""
    import json

    from tfaudit.trail.jsonline import BadLine, decode_with_floats

    try:
        return "value", json.dumps(decode_with_floats(line)[0], sort_keys=True, ensure_ascii=False)
    except BadLine as e:
        return e.fault.value, e.message


@settings(max_examples=300, deadline=None, derandomize=True, database=None, print_blob=False,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                 HealthCheck.data_too_large, HealthCheck.large_base_example])
@given(data=st.data())
def test_the_fast_decoder_reads_every_line_as_the_strict_one_does(base: tuple[list[bytes], Path, Path],
                                                                  data: st.DataObject) -> None:
    """orjson decodes most lines (tfaudit.trail.jsonline.decode_value): on each mutated line it gives
    the strict decoder's value (ints stay ints, floats floats), or the strict decoder's own fault
    and message."""
    import json

    from tfaudit.trail.jsonline import BadLine, decode_value

    lines, _, _ = base
    for line in data.draw(mutated_ledger(lines, 8)):
        line = line.rstrip(b"\n")
        try:
            got = "value", json.dumps(decode_value(line), sort_keys=True, ensure_ascii=False)
        except BadLine as e:
            got = e.fault.value, e.message
        assert got == _strictly(line), line[:200]
