"""Exports of a real ledger (two `tfaudit apply` runs on fixtures/quickstart): OCSF, CloudEvents, in-toto/DSSE."""

from __future__ import annotations

import base64
import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from conftest import FIXTURES, CliResult, read_ledger, require_terraform
from export.test_export import CE_SCHEMA, ocsf_problems

pytestmark = [pytest.mark.slow, pytest.mark.terraform]


@pytest.fixture(scope="module")
def ledger(tmp_path_factory: pytest.TempPathFactory, base_env: dict[str, str]) -> dict[str, Any]:
    tf = require_terraform()
    root = tmp_path_factory.mktemp("export-e2e")
    work = root / "quickstart"
    shutil.copytree(FIXTURES / "quickstart", work)
    subprocess.run([tf, "init", "-input=false", "-no-color"], cwd=work, env=base_env, check=True, capture_output=True)
    # sinks take the export formats as their wire format: a security data lake gets OCSF directly
    (work / ".tfaudit.hcl").write_text(
        'sink "file" "lake" {\n  path   = "lake/ocsf.jsonl"\n  format = "ocsf"\n}\n'
        'sink "file" "bus" {\n  path   = "bus/events.jsonl"\n  format = "cloudevents"\n}\n')
    from tfaudit.trail.signing import generate_keypair

    priv, pub = generate_keypair(root / "keys" / "signing-key")
    env = {**base_env, "TFAUDIT_SIGNING_KEY": str(priv)}

    def tfaudit(*args: str, cwd: Path = work, extra_env: dict[str, str] | None = None) -> CliResult:
        res = subprocess.run([sys.executable, "-m", "tfaudit", *args], cwd=cwd, env={**env, **(extra_env or {})},
                             capture_output=True, text=True, timeout=300)
        return CliResult(res.returncode, res.stdout, res.stderr)

    for args in (["-auto-approve"], ["-auto-approve", "-var", "release=2"]):
        r = tfaudit("apply", *args)
        assert r.returncode == 0, r.output
    path = work / ".tfaudit" / "ledger.jsonl"
    return {"root": root, "work": work, "path": path, "records": read_ledger(path), "priv": priv, "pub": pub,
            "tfaudit": tfaudit}


def _jsonl(text: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def test_ocsf_export_validates(ledger: dict[str, Any]) -> None:
    res = ledger["tfaudit"]("export", str(ledger["path"]), "--format", "ocsf")
    assert res.returncode == 0, res.output
    events = _jsonl(res.stdout)
    assert len(events) == len(ledger["records"])
    for event in events:
        assert ocsf_problems(event) == [], event
    resources = [e for e in events if e["unmapped"]["tfaudit"]["type"] == "resource.changed"]
    assert [e["activity_name"] for e in resources] == ["Create"] * 4 + ["Update"] * 4
    assert all(e["status_id"] == 1 and e["actor"]["user"]["name"] == "alice" for e in resources)
    assert {e["resources"][0]["uid"] for e in resources} == {
        "terraform_data.network", "terraform_data.database", 'terraform_data.app["api"]', 'terraform_data.app["worker"]'}
    assert "quickstart-not-a-real-password" not in res.stdout  # redacted values stay redacted
    # the file sink configured with format = "ocsf" wrote the same events
    lake = _jsonl((ledger["work"] / "lake" / "ocsf.jsonl").read_text())
    assert [e["metadata"]["uid"] for e in lake] == [e["metadata"]["uid"] for e in events]
    assert all(ocsf_problems(e) == [] for e in lake)


def test_cloudevents_and_native_exports(ledger: dict[str, Any]) -> None:
    res = ledger["tfaudit"]("export", str(ledger["path"]), "--format", "cloudevents")
    events = _jsonl(res.stdout)
    for event in events:
        jsonschema.validate(event, CE_SCHEMA)
    assert [e["data"] for e in events] == ledger["records"]
    assert [e["type"] for e in events][:2] == ["dev.tfaudit.run.started", "dev.tfaudit.resource.changed"]
    bus = _jsonl((ledger["work"] / "bus" / "events.jsonl").read_text())
    assert [e["id"] for e in bus] == [e["id"] for e in events]
    native = ledger["tfaudit"]("export", str(ledger["path"]), "--format", "native")
    assert _jsonl(native.stdout) == ledger["records"]
    run2 = ledger["records"][-1]["run"]["id"]
    only = _jsonl(ledger["tfaudit"]("export", str(ledger["path"]), "--format", "ocsf", "--run", run2[:8]).stdout)
    assert {e["metadata"]["correlation_uid"] for e in only} == {run2} and len(only) == 6
    bad = ledger["tfaudit"]("export", str(ledger["path"]), "--format", "cef")
    assert bad.returncode == 64 and "cef" in bad.stderr


def test_in_toto_export_verifies(ledger: dict[str, Any]) -> None:
    t, out = ledger["tfaudit"], ledger["root"] / "runs.intoto.jsonl"
    res = t("export", str(ledger["path"]), "--format", "in-toto", "-o", str(out))
    assert res.returncode == 0, res.output
    envelopes = _jsonl(out.read_text())
    assert len(envelopes) == 2
    recs = ledger["records"]
    for env, run_id in zip(envelopes, [recs[0]["run"]["id"], recs[-1]["run"]["id"]]):
        assert env["payloadType"] == "application/vnd.in-toto+json"
        stmt = json.loads(base64.b64decode(env["payload"]))
        assert stmt["_type"] == "https://in-toto.io/Statement/v1"
        assert stmt["predicateType"] == "https://tfaudit.dev/attestation/run/v1"
        run_recs = [r for r in recs if r["run"]["id"] == run_id]
        assert stmt["predicate"]["records"] == run_recs
        digests = {s["name"].split(":")[0]: s["digest"]["sha256"] for s in stmt["subject"]}
        finished = run_recs[-1]["outcome"]["state"]
        assert digests["plan"] == run_recs[0]["run"]["plan_sha256"]
        assert digests["state"] == finished["after"]["sha256"]  # the last state subject listed is "after"
        lines = [line for line in ledger["path"].read_bytes().splitlines() if run_id.encode() in line]
        import hashlib

        assert digests["tfaudit-run"] == hashlib.sha256(b"".join(x + b"\n" for x in lines)).hexdigest()

    # tfaudit verify accepts the envelopes, alone or against the ledger
    ok = t("verify", "--dsse", str(out), "--public-key", str(ledger["pub"]))
    assert ok.returncode == 0 and "OK: 2 DSSE envelope(s) verified (12 records in 2 runs)" in ok.stdout, ok.output
    both = t("verify", str(ledger["path"]), "--dsse", str(out), "--public-key", str(ledger["pub"]))
    assert both.returncode == 0 and "all in the ledger" in both.stdout, both.output

    # an independent DSSE implementation agrees (securesystemslib, as used by in-toto and TUF)
    from cryptography.hazmat.primitives import serialization
    from securesystemslib.dsse import Envelope
    from securesystemslib.signer import SSlibKey

    from tfaudit.trail.signing import load_verifier

    verifier = load_verifier(ledger["pub"])
    key = SSlibKey.from_crypto(serialization.load_pem_public_key(ledger["pub"].read_bytes()), keyid=verifier.key_id)
    for env in envelopes:
        assert Envelope.from_dict(env).verify([key], 1) == {verifier.key_id: key}


def test_tampered_envelopes_are_rejected(ledger: dict[str, Any]) -> None:
    t, src = ledger["tfaudit"], ledger["root"] / "runs.intoto.jsonl"
    if not src.exists():
        t("export", str(ledger["path"]), "--format", "in-toto", "-o", str(src))
    env = _jsonl(src.read_text())[1]
    stmt = json.loads(base64.b64decode(env["payload"]))

    def check(doc: dict[str, Any], *extra: str) -> CliResult:
        f = ledger["root"] / "tampered.jsonl"
        f.write_text(json.dumps(doc) + "\n")
        return t("verify", "--dsse", str(f), "--public-key", str(ledger["pub"]), *extra)

    edited = json.loads(json.dumps(stmt))
    edited["predicate"]["records"][1]["actor"]["user"] = "mallory"
    res = check({**env, "payload": base64.b64encode(json.dumps(edited).encode()).decode()})
    assert res.returncode == 1 and "no valid signature" in res.stdout, res.output
    sig = bytearray(base64.b64decode(env["signatures"][0]["sig"]))
    sig[0] ^= 1
    res = check({**env, "signatures": [{"keyid": env["signatures"][0]["keyid"], "sig": base64.b64encode(bytes(sig)).decode()}]})
    assert res.returncode == 1 and "no valid signature" in res.stdout
    res = check({**env, "payloadType": "application/json"})
    assert res.returncode == 1
    # re-signed by the holder of the key, but a record was edited: its own signature gives it away
    from tfaudit.export.intoto import sign_envelope
    from tfaudit.trail.signing import load_signer

    res = check(sign_envelope(edited, load_signer(ledger["priv"])))
    assert res.returncode == 1 and "signature does not match it (edited)" in res.stdout, res.output
    # a different key
    from tfaudit.trail.signing import generate_keypair

    _, other_pub = generate_keypair(ledger["root"] / "keys" / "other")
    res = t("verify", "--dsse", str(src), "--public-key", str(other_pub))
    assert res.returncode == 1 and "FAILED: 2 problem(s) in 2 DSSE envelope(s)" in res.stdout
