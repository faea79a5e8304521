"""End to end: `tfaudit apply` on fixtures/quickstart anchors checkpoints; truncation and a re-signed rewrite are caught.

One module-scoped workdir runs two real applies (create, then update) with checkpoints to a
directory; each test works on copies of the resulting ledger.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from conftest import FIXTURES, CliResult, read_ledger, require_terraform

pytestmark = [pytest.mark.slow, pytest.mark.terraform]

# A tamperer who holds the signing key: rebuild a valid chain from (some of) the records, re-signed.
REWRITE = textwrap.dedent("""
    import json, sys
    from pathlib import Path
    from tfaudit.trail.ledger import Ledger
    from tfaudit.trail.signing import load_signer

    src, dst, key, mode = Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3]), sys.argv[4]
    recs = [json.loads(line) for line in src.read_text().splitlines()]
    if mode.startswith("fewer"):  # drop the record of one changed resource, from the first or the last run
        changed = [r for r in recs if r["type"] == "resource.changed"]
        drop = (changed[0] if mode == "fewer-first-run" else changed[-1])["id"]
        recs = [r for r in recs if r["id"] != drop]
    elif mode == "different":  # same number of records, someone else did it
        for r in recs:
            r["actor"]["user"] = "mallory"
    dst.unlink(missing_ok=True)
    Ledger(dst).append(recs, load_signer(key))
""")


@pytest.fixture(scope="module")
def anchored(tmp_path_factory: pytest.TempPathFactory, base_env: dict[str, str]) -> dict[str, Any]:
    """quickstart applied twice by the real CLI: run 1 with --checkpoints, run 2 with TFAUDIT_CHECKPOINTS."""
    tf = require_terraform()
    root = tmp_path_factory.mktemp("cp-e2e")
    work = root / "quickstart"
    shutil.copytree(FIXTURES / "quickstart", work)
    subprocess.run([tf, "init", "-input=false", "-no-color"], cwd=work, env=base_env, check=True, capture_output=True)
    from tfaudit.trail.signing import generate_keypair

    priv, pub = generate_keypair(root / "keys" / "signing-key")
    cpdir = root / "anchors"
    env = {**base_env, "TFAUDIT_SIGNING_KEY": str(priv)}

    def tfaudit(*args: str, extra_env: dict[str, str] | None = None, cwd: Path = work,
                python: tuple[str, ...] = ()) -> CliResult:
        res = subprocess.run([sys.executable, *python, "-m", "tfaudit", *args], cwd=cwd,
                             env={**env, **(extra_env or {})}, capture_output=True, text=True, timeout=300)
        return CliResult(res.returncode, res.stdout, res.stderr)

    r1 = tfaudit("apply", "-auto-approve", "--checkpoints", str(cpdir), python=("-X", "importtime"))
    assert r1.returncode == 0, r1.output
    # anchoring to a directory needs no AWS library
    imported = {line.split("|")[-1].strip() for line in r1.stderr.splitlines() if line.startswith("import time:")}
    assert "tfaudit.trail.checkpoints" in imported and "boto3" not in imported and "botocore" not in imported
    r2 = tfaudit("apply", "-auto-approve", "-var", "release=2", extra_env={"TFAUDIT_CHECKPOINTS": str(cpdir)})
    assert r2.returncode == 0, r2.output
    return {"root": root, "work": work, "ledger": work / ".tfaudit" / "ledger.jsonl", "priv": priv, "pub": pub,
            "cpdir": cpdir, "tfaudit": tfaudit}


def _verify(a: dict[str, Any], ledger: Path, *extra: str) -> CliResult:
    return a["tfaudit"]("verify", str(ledger), "--public-key", str(a["pub"]), *extra)


def _copy(a: dict[str, Any], name: str) -> Path:
    dst = a["root"] / name
    shutil.copy(a["ledger"], dst)
    return dst


def test_each_run_is_anchored_and_the_ledger_verifies(anchored: dict[str, Any]) -> None:
    recs = read_ledger(anchored["ledger"])
    runs = [r for r in recs if r["type"] == "run.finished"]
    assert len(runs) == 2 and all(r["outcome"]["status"] == "succeeded" for r in runs)
    names = sorted(p.name for p in anchored["cpdir"].iterdir())
    sizes = sorted({int(n.split("-")[0]) for n in names if n.endswith(".checkpoint")})
    first_run = next(i for i, r in enumerate(recs, 1) if r["type"] == "run.finished")
    assert sizes == [first_run, len(recs)]
    assert sum(n.endswith(".consistency.json") for n in names) == 1
    note = next(anchored["cpdir"].glob(f"{len(recs):012d}-*.checkpoint")).read_text()
    origin, size, root_b64 = note.split("\n")[:3]
    assert origin.startswith("tfaudit.dev/ledger/") and size == str(len(recs)) and len(root_b64) == 44
    assert note.split("\n\n")[1].startswith(f"\u2014 {origin} ")

    res = _verify(anchored, anchored["ledger"], "--checkpoints", str(anchored["cpdir"]))
    assert res.returncode == 0, res.output
    assert f"OK: the ledger extends all 2 checkpoint(s) in {anchored['cpdir']} (latest: {len(recs)} records" in res.stdout


def test_truncating_the_newest_records_is_detected(anchored: dict[str, Any]) -> None:
    ledger = _copy(anchored, "truncated.jsonl")
    lines = ledger.read_bytes().splitlines(keepends=True)
    first_run = next(i for i, ln in enumerate(lines, 1) if b'"type":"run.finished"' in ln)
    ledger.write_bytes(b"".join(lines[:first_run]))  # cut off the whole second run: the chain stays valid
    plain = _verify(anchored, ledger)
    assert plain.returncode == 0, plain.output  # the hash chain alone cannot see this
    res = _verify(anchored, ledger, "--checkpoints", str(anchored["cpdir"]))
    assert res.returncode == 1
    assert (f"checkpoints: truncated: {len(lines):012d}-" in res.stdout
            and f"the ledger has {first_run} records but this checkpoint signed {len(lines)}" in res.stdout), res.stdout
    assert "FAILED: 1 checkpoint problem(s)" in res.stdout
    as_json = json.loads(_verify(anchored, ledger, "--checkpoints", str(anchored["cpdir"]), "--json").stdout)
    assert as_json["ok"] is False and as_json["checkpoints"]["problems"][0]["kind"] == "truncated"


@pytest.mark.parametrize(("mode", "kinds"), [("fewer-first-run", ["rewritten", "truncated"]),
                                             ("fewer-last-run", ["truncated"]), ("different", ["rewritten"])])
def test_rewriting_and_resigning_with_the_same_key_is_detected(anchored: dict[str, Any], mode: str,
                                                               kinds: list[str]) -> None:
    ledger = anchored["root"] / f"rewritten-{mode}.jsonl"
    subprocess.run([sys.executable, "-c", REWRITE, str(anchored["ledger"]), str(ledger), str(anchored["priv"]), mode],
                   check=True)
    plain = _verify(anchored, ledger)
    assert plain.returncode == 0, plain.output  # a valid chain, validly signed: only the anchors know better
    res = _verify(anchored, ledger, "--checkpoints", str(anchored["cpdir"]))
    assert res.returncode == 1, res.output
    assert [ln.split(": ")[2] for ln in res.stdout.splitlines() if ": checkpoints: " in ln] == kinds, res.stdout
    if "rewritten" in kinds:
        assert "do not hash to the root signed in this checkpoint" in res.stdout


def test_a_run_on_a_tampered_ledger_signs_no_checkpoint(anchored: dict[str, Any]) -> None:
    work = anchored["root"] / "tampered-work"
    shutil.copytree(anchored["work"], work, symlinks=True)
    ledger = work / ".tfaudit" / "ledger.jsonl"
    cpdir = anchored["root"] / "anchors-copy"
    shutil.copytree(anchored["cpdir"], cpdir)
    subprocess.run([sys.executable, "-c", REWRITE, str(anchored["ledger"]), str(ledger), str(anchored["priv"]),
                    "different"], check=True)
    before = sorted(p.name for p in cpdir.iterdir())
    warned = anchored["tfaudit"]("apply", "-auto-approve", "--checkpoints", str(cpdir), cwd=work)
    assert warned.returncode == 0, warned.output  # default on_failure = "warn": terraform's result stands
    assert "tfaudit: warning: checkpoint: the ledger's first" in warned.stderr and "no new checkpoint was signed" in warned.stderr
    assert sorted(p.name for p in cpdir.iterdir()) == before

    (work / ".tfaudit.hcl").write_text(f'checkpoints {{\n  on_failure = "fail"\n  destination "dir" {{ path = "{cpdir}" }}\n}}\n')
    failed = anchored["tfaudit"]("apply", "-auto-approve", cwd=work)
    assert failed.returncode == 4 and "tfaudit: error: checkpoint:" in failed.stderr, failed.output
    assert sorted(p.name for p in cpdir.iterdir()) == before


def test_proofs_verify_without_the_ledger(anchored: dict[str, Any]) -> None:
    t = anchored["tfaudit"]
    n = len(read_ledger(anchored["ledger"]))
    inc = anchored["root"] / "inclusion.json"
    made = t("prove", "inclusion", str(anchored["ledger"]), "--seq", "4", "--checkpoints", str(anchored["cpdir"]),
             "-o", str(inc))
    assert made.returncode == 0, made.output
    con = anchored["root"] / "consistency.json"
    first_run = int(sorted(p.name for p in anchored["cpdir"].iterdir())[0].split("-")[0])
    made = t("prove", "consistency", str(anchored["ledger"]), "--from", str(first_run), "--to", str(n),
             "--checkpoints", str(anchored["cpdir"]), "-o", str(con))
    assert made.returncode == 0, made.output
    elsewhere = anchored["root"] / "third-party"
    elsewhere.mkdir()
    for proof in (inc, con):  # a third party with the proof and the public key only
        res = t("verify-proof", str(proof), "--public-key", str(anchored["pub"]), cwd=elsewhere)
        assert res.returncode == 0 and res.stdout.startswith("OK: "), res.output
        assert "not authenticated" not in res.stdout
    assert f"record seq 4" in t("verify-proof", str(inc), cwd=elsewhere).stdout
    doc = json.loads(inc.read_text())
    doc["hashes"][0] = doc["hashes"][1]
    inc.write_text(json.dumps(doc))
    res = t("verify-proof", str(inc), "--public-key", str(anchored["pub"]), cwd=elsewhere)
    assert res.returncode == 1 and "does not lead to the root" in res.stderr
    # the ledger no longer matches the checkpoint: no proof is issued against it
    truncated = _copy(anchored, "short.jsonl")
    truncated.write_bytes(b"".join(truncated.read_bytes().splitlines(keepends=True)[:first_run]))
    res = t("prove", "inclusion", str(truncated), "--seq", "1", "--size", str(n), "--checkpoints", str(anchored["cpdir"]))
    assert res.returncode == 1 and "truncated" in res.stderr
