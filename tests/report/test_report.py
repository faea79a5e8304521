"""tfaudit report --html: one self-contained page, checked as text and as rendered by headless Chromium."""

from __future__ import annotations

import json
import os
import re
import shutil
import struct
import subprocess
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from conftest import CliResult
from trail_factory import Res, add_run
from tfaudit.report.html import OUTCOME_COLOURS
from tfaudit.trail.signing import load_signer

HOSTILE = '<script>alert("x")</script>'


@pytest.fixture
def trail(tmp_path: Path, keypair: tuple[Path, Path]) -> dict[str, Any]:
    signer = load_signer(keypair[0])
    ledger = tmp_path / "ledger.jsonl"
    add_run(ledger, signer, time="2026-03-01T09:00:00.000000Z", actor="alice", workspace="prod",
            resources=[Res("aws_iam_role.deploy", "create"), Res("terraform_data.a", "update")])
    add_run(ledger, signer, time="2026-03-02T10:00:00.000000Z", actor="bob", workspace="prod", status="partial",
            resources=[Res("aws_db_instance.main", "replace", "failed", error="quota exceeded for db.r6g"),
                       Res("terraform_data.b", "create")])
    add_run(ledger, signer, time="2026-03-03T11:00:00.000000Z", actor="carol", workspace="staging", status="failed",
            resources=[Res("terraform_data.c", "delete", "failed", error="timeout while deleting")])
    add_run(ledger, signer, time="2026-03-04T12:00:00.000000Z", actor="alice", workspace="staging", command="plan",
            resources=[Res("terraform_data.c", "delete")])
    add_run(ledger, signer, time="2026-03-05T13:00:00.000000Z", actor=HOSTILE, workspace=HOSTILE, status="blocked",
            resources=[], findings=[{"rule": "identity.outside_ci", "severity": "high", "address": None,
                                     "message": "only CI may change account 123456789012"}])
    add_run(ledger, signer, time="2026-03-06T14:00:00.000000Z", actor="alice", workspace="prod",
            resources=[Res("aws_s3_bucket.logs", "delete",
                           findings=[{"rule": "data.bucket_delete", "severity": "critical", "address": "aws_s3_bucket.logs",
                                      "message": "deletes a bucket"}])])
    return {"ledger": ledger, "pub": keypair[1], "dir": tmp_path}


def _report(run_tfaudit: Callable[..., CliResult], trail: dict[str, Any], *args: str) -> str:
    out = trail["dir"] / "report.html"
    res = run_tfaudit("report", "--html", str(out), "--ledger", str(trail["ledger"]), *args)
    assert res.returncode == 0, res.output
    assert f"wrote {out}" in res.stdout
    return out.read_text("utf-8")


def test_self_contained_and_escaped(trail: dict[str, Any], run_tfaudit: Callable[..., CliResult]) -> None:
    html = _report(run_tfaudit, trail, "--public-key", str(trail["pub"]))
    # nothing a browser would fetch: no scripts, links, images, frames, imports or url()s
    for needle in ("<script", "<link", "<img", "<iframe", "@import", "url(", " src=", " href="):
        assert needle not in html.lower().replace(escape_lower(HOSTILE), ""), needle
    assert "default-src 'none'" in html  # and the page's CSP forbids fetching anyway
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in html
    # sections and their tables
    for table in ("verification", "timeline", "per-actor", "per-workspace", "riskiest", "failed", "runs"):
        assert f'id="{table}"' in html
    assert "every ledger verified" in html


def escape_lower(text: str) -> str:
    from html import escape

    return escape(text).lower()


def test_riskiest_and_failed_and_tallies(trail: dict[str, Any], run_tfaudit: Callable[..., CliResult]) -> None:
    html = _report(run_tfaudit, trail)
    riskiest = html[html.index('id="riskiest"'):html.index("</table>", html.index('id="riskiest"'))]
    rows = re.findall(r"<tr><td class=num>(\d+)</td><td><code>([^<]+)</code>", riskiest)
    # the critical finding on a bucket delete first, then the failed db replace
    assert rows[0] == ("155", "aws_s3_bucket.logs") and rows[1] == ("70", "aws_db_instance.main")
    assert [int(s) for s, _ in rows] == sorted((int(s) for s, _ in rows), reverse=True)
    failed = html[html.index('id="failed"'):html.index("</table>", html.index('id="failed"'))]
    assert "quota exceeded for db.r6g" in failed and "timeout while deleting" in failed
    per_actor = html[html.index('id="per-actor"'):html.index("</table>", html.index('id="per-actor"'))]
    # alice: 2 applies (3 changes), her plan does not count as changes
    assert re.search(r"<td>alice</td><td class=num>2</td><td class=num>3</td>", per_actor)
    assert "chain only" in html and "signatures NOT checked" in html


def test_a_tampered_ledger_shows_failed_verification(trail: dict[str, Any], run_tfaudit: Callable[..., CliResult]) -> None:
    ledger: Path = trail["ledger"]
    lines = ledger.read_bytes().splitlines(keepends=True)
    lines[2] = lines[2].replace(b'"alice"', b'"mallory"', 1)
    ledger.write_bytes(b"".join(lines))
    html = _report(run_tfaudit, trail, "--public-key", str(trail["pub"]))
    assert "verification FAILED" in html
    assert re.search(r'<td class="bad">failed</td>', html)
    assert "line 3: bad_signature" in html


# --- rendered in a real browser ----------------------------------------------------------------
def _chromium() -> str:
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if path:
        return path
    reason = "chromium is not installed (apt-get install -y chromium)"
    if os.environ.get("TFAUDIT_REQUIRE_TERRAFORM") == "1":  # CI installs it in .ci/run
        pytest.fail(reason, pytrace=False)
    pytest.skip(reason)


def _png_pixels(path: Path) -> tuple[int, int, list[bytes]]:
    """Rows of RGB(A) bytes from an 8-bit, non-interlaced PNG (what Chromium writes)."""
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, idat, width = 8, b"", 0
    while pos < len(data):
        length, ctype = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + length]
        if ctype == b"IHDR":
            width, height, depth, colour, _, _, interlace = struct.unpack(">IIBBBBB", body)
            assert depth == 8 and interlace == 0 and colour in (2, 6)
            bpp = 3 if colour == 2 else 4
        elif ctype == b"IDAT":
            idat += body
        pos += 12 + length
    raw = zlib.decompress(idat)
    stride = width * bpp
    rows: list[bytes] = []
    prev = bytearray(stride)
    i = 0
    for _ in range(height):
        ftype, line = raw[i], bytearray(raw[i + 1:i + 1 + stride])
        i += 1 + stride
        for x in range(stride):
            a = line[x - bpp] if x >= bpp else 0
            b = prev[x]
            c = prev[x - bpp] if x >= bpp else 0
            if ftype == 1:
                line[x] = (line[x] + a) & 255
            elif ftype == 2:
                line[x] = (line[x] + b) & 255
            elif ftype == 3:
                line[x] = (line[x] + (a + b) // 2) & 255
            elif ftype == 4:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                line[x] = (line[x] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 255
        rows.append(bytes(line) if bpp == 3 else bytes(v for k, v in enumerate(line) if k % 4 != 3))
        prev = line
    return width, height, rows


def _bands(rows: list[bytes], rgb: tuple[int, int, int], tol: int = 6) -> list[tuple[int, int, int]]:
    """Vertical bands (first row, last row, pixel count) where a colour occurs."""
    hits = []
    for y, row in enumerate(rows):
        n = sum(1 for x in range(0, len(row), 3)
                if abs(row[x] - rgb[0]) <= tol and abs(row[x + 1] - rgb[1]) <= tol and abs(row[x + 2] - rgb[2]) <= tol)
        if n:
            hits.append((y, n))
    bands: list[tuple[int, int, int]] = []
    for y, n in hits:
        if bands and y - bands[-1][1] <= 2:
            bands[-1] = (bands[-1][0], y, bands[-1][2] + n)
        else:
            bands.append((y, y, n))
    return bands


@pytest.mark.slow
def test_renders_in_headless_chromium(trail: dict[str, Any], run_tfaudit: Callable[..., CliResult]) -> None:
    chromium = _chromium()
    _report(run_tfaudit, trail, "--public-key", str(trail["pub"]))
    page = trail["dir"] / "report.html"
    shot = trail["dir"] / "report.png"
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
             "--hide-scrollbars", f"--user-data-dir={trail['dir'] / 'chromium-profile'}"]
    res = subprocess.run([chromium, *flags, f"--screenshot={shot}", "--window-size=1280,2200", page.as_uri()],
                         capture_output=True, text=True, timeout=120)
    assert shot.is_file(), res.stderr[-2000:]
    dom = subprocess.run([chromium, *flags, "--dump-dom", page.as_uri()], capture_output=True, text=True, timeout=120)
    assert dom.returncode == 0, dom.stderr[-2000:]

    # the DOM as the browser built it: the chart's dots and every table with its rows
    circles = re.findall(r'<circle class="run (\w+)"[^>]*fill="(#[0-9a-f]{6})"', dom.stdout)
    assert sorted(s for s, _ in circles) == ["blocked", "failed", "partial", "planned", "succeeded", "succeeded"]
    assert all(OUTCOME_COLOURS[s] == c for s, c in circles)
    for table in ("verification", "per-actor", "per-workspace", "riskiest", "failed", "runs"):
        body = re.search(rf'<table id="{table}">.*?<tbody>(.*?)</tbody>', dom.stdout, re.S)
        assert body and body.group(1).count("<tr>") >= 1, table
    assert "<script>alert" not in dom.stdout

    # the screenshot as a person sees it: each outcome's colour in the legend and again, as a
    # small round dot, lower down in the chart
    width, height, rows = _png_pixels(shot)
    assert (width, height) == (1280, 2200)
    for status in ("succeeded", "partial", "failed", "blocked", "planned"):
        hexc = OUTCOME_COLOURS[status]
        rgb = (int(hexc[1:3], 16), int(hexc[3:5], 16), int(hexc[5:7], 16))
        bands = _bands(rows, rgb)
        assert len(bands) >= 2, (status, bands)  # the legend pill, then the chart's dot(s)
        dot = bands[1]
        assert 4 <= dot[1] - dot[0] <= 20 and dot[2] >= 12, (status, bands)
    # the tables' header rows (their grey background) appear down the page
    header_bands = _bands(rows, (0xF0, 0xF3, 0xF6), tol=1)
    assert len([b for b in header_bands if b[2] > 2000]) >= 5, header_bands
