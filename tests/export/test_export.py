"""Exports without terraform: DSSE against the spec's vectors, and the OCSF / CloudEvents mappings of each record kind."""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, utils

from tfaudit.errors import UsageError, VerificationError
from tfaudit.export import WIRE_FORMATS, formatter
from tfaudit.export.intoto import b64decode_any, open_envelope, pae
from tfaudit.trail.signing import Verifier, key_id_for

DATA = Path(__file__).parents[1] / "data"
OCSF = json.loads((DATA / "ocsf_api_activity_required.json").read_text())
CE_SCHEMA = json.loads((DATA / "cloudevents_1.0.schema.json").read_text())


# --- DSSE ------------------------------------------------------------------------------------------------
def test_pae_and_signature_match_the_dsse_protocol_test_vector() -> None:
    v = json.loads((DATA / "dsse_protocol_vector.json").read_text())
    assert pae(v["payloadType"], v["body"].encode()) == v["pae"].encode()
    env = v["envelope"]
    assert b64decode_any(env["payload"]) == v["body"].encode()
    key = ec.EllipticCurvePublicNumbers(int(v["ecdsa_p256"]["x"]), int(v["ecdsa_p256"]["y"]), ec.SECP256R1()).public_key()
    raw = base64.b64decode(env["signatures"][0]["sig"])
    der = utils.encode_dss_signature(int.from_bytes(raw[:32], "big"), int.from_bytes(raw[32:], "big"))
    key.verify(der, pae(env["payloadType"], b64decode_any(env["payload"])), ec.ECDSA(hashes.SHA256()))


def _vector_keys() -> dict[str, Verifier]:
    out = {}
    for name, k in json.loads((DATA / "dsse_vectors.json").read_text())["keys"].items():
        pub = ed25519.Ed25519PrivateKey.from_private_bytes(bytes.fromhex(k["seed"])).public_key()
        assert pub.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw).hex() == k["public"]
        out[name] = Verifier(pub, key_id_for(pub), name)
    return out


@pytest.mark.parametrize("vector", json.loads((DATA / "dsse_vectors.json").read_text())["vectors"], ids=lambda v: v["id"])
def test_dsse_vectors(vector: dict[str, Any]) -> None:
    keys = _vector_keys()
    env = vector["envelope"]
    signed_pae = bytes.fromhex(vector["pae"])
    if vector["id"] != "payload-type-swapped":  # there the PAE is of the type that was signed, not the claimed one
        assert pae(env["payloadType"], b64decode_any(env["payload"])) == signed_pae
    trusted = [keys[k] for k in vector["trustedKeys"]]
    if vector["expect"] == "accept":
        assert open_envelope(env, trusted, threshold=vector["threshold"],
                             payload_types=vector["supportedPayloadTypes"]) == b64decode_any(env["payload"])
    else:
        with pytest.raises(VerificationError):
            open_envelope(env, trusted, threshold=vector["threshold"], payload_types=vector["supportedPayloadTypes"])


# --- OCSF --------------------------------------------------------------------------------------------------
def _get(doc: Mapping[str, Any], dotted: str) -> Any:
    for part in dotted.split("."):
        doc = doc.get(part) if isinstance(doc, Mapping) else None  # type: ignore[assignment]
    return doc


def ocsf_problems(event: Mapping[str, Any]) -> list[str]:
    """Everything in the vendored OCSF 1.x API Activity requirements that `event` misses."""
    out = [f"missing {k}" for k in OCSF["event_required"] if event.get(k) in (None, "", [], {})]
    if event.get("class_uid") != OCSF["class_uid"] or event.get("category_uid") != OCSF["category_uid"]:
        out.append("not class 6003 in category 6")
    for path, rule in OCSF["objects"].items():
        objs = event.get(path[:-2]) or [] if path.endswith("[]") else [_get(event, path)]
        for obj in objs:
            if obj is None and "required" in rule and path.count(".") == 0:
                continue  # the parent's own requirement is reported above
            if not isinstance(obj, Mapping):
                out.append(f"{path} is not an object")
                continue
            out += [f"missing {path}.{k}" for k in rule.get("required", []) if obj.get(k) in (None, "")]
            if "at_least_one" in rule and not any(obj.get(k) not in (None, "", {}) for k in rule["at_least_one"]):
                out.append(f"{path} needs one of {rule['at_least_one']}")
    for key, allowed in OCSF["enums"].items():
        if event.get(key) not in allowed:
            out.append(f"{key}={event.get(key)!r} not in {allowed}")
    for path, typ in OCSF["types"].items():
        v = _get(event, path)
        if (typ == "integer" and (not isinstance(v, int) or isinstance(v, bool))) or (typ == "string" and not isinstance(v, str)):
            out.append(f"{path} is not a {typ}")
    if event.get("type_uid") != event.get("class_uid", 0) * 100 + event.get("activity_id", 0):
        out.append("type_uid is not class_uid * 100 + activity_id")
    return out


def _record(rtype: str, **body: Any) -> dict[str, Any]:
    return {
        "schema": "tfaudit.record/v1", "id": "0" * 31 + "1", "type": rtype, "time": "2026-11-26T02:21:35.617762Z",
        "tfaudit_version": "0.1.0",
        "run": {"id": "r" * 32, "command": "apply", "args": [], "tool": "terraform", "tool_version": "1.11.4",
                "workspace": "prod", "working_dir": "/srv/infra dir", "plan_sha256": "ab" * 32, "plan_file": None,
                "started_at": "2026-11-26T02:21:35Z"},
        "actor": {"user": "alice", "os_user": "alice", "hostname": "build-7", "git": {"user_email": "a@example.com"},
                  "ci": None, "cloud": {"account": "123456789012"}},
        "chain": {"seq": 7, "prev": "sha256:" + "0" * 64},
        "signature": {"alg": "ed25519", "key_id": "sha256:" + "1" * 64, "value": "AA=="},
        **body,
    }


def _resource(action: str, status: str = "succeeded", **extra: Any) -> dict[str, Any]:
    return {"address": "aws_s3_bucket.logs", "type": "aws_s3_bucket", "name": "logs", "module": None, "action": action,
            "actions": [action], "status": status, "error": None, "changed_paths": ["acl"], "before": {"acl": "private"},
            "after": {"acl": "public-read"}, "provider": "registry.terraform.io/hashicorp/aws", **extra}


CASES = [
    ("create", _record("resource.changed", resource=_resource("create")), 1, 1),
    ("update", _record("resource.changed", resource=_resource("update")), 3, 1),
    ("delete", _record("resource.changed", resource=_resource("delete")), 4, 1),
    ("replace", _record("resource.changed", resource=_resource("replace")), 99, 1),
    ("failed", _record("resource.changed", resource=_resource(
        "update", "failed", error={"summary": "AccessDenied", "detail": "no s3:PutBucketAcl"})), 3, 2),
    ("not attempted", _record("resource.changed", resource=_resource("create", "not_attempted")), 1, 99),
    ("run.started", _record("run.started", plan={"summary": {"create": 1}, "changes": [
        {"address": "aws_s3_bucket.logs", "actions": ["create"]}]}), 99, 0),
    ("run.finished ok", _record("run.finished", outcome={"status": "succeeded", "counts": {"succeeded": 1}}), 99, 1),
    ("run.finished partial", _record("run.finished", outcome={"status": "partial", "counts": {"failed": 1}}), 99, 2),
    ("plan.recorded", _record("plan.recorded", plan={"summary": {}, "changes": []}), 2, 1),
    ("findings", _record("resource.changed", resource=_resource("update"),
                         findings=[{"rule": "s3.public_acl", "severity": "critical", "message": "public"}]), 3, 1),
]


@pytest.mark.parametrize(("name", "record", "activity", "status"), CASES, ids=[c[0] for c in CASES])
def test_ocsf_mapping_meets_the_required_fields(name: str, record: dict[str, Any], activity: int, status: int) -> None:
    event = dict(formatter("ocsf")(record))
    assert ocsf_problems(event) == []
    assert (event["activity_id"], event["status_id"]) == (activity, status)
    assert event["time"] == 1795659695617 and event["metadata"]["product"]["name"] == "tfaudit"
    assert event["actor"]["user"]["name"] == "alice" and event["src_endpoint"] == {"hostname": "build-7"}
    assert event["metadata"]["uid"] == record["id"] and event["metadata"]["correlation_uid"] == record["run"]["id"]
    if record["type"] == "resource.changed":
        assert event["resources"][0]["uid"] == "aws_s3_bucket.logs" and event["resources"][0]["type"] == "aws_s3_bucket"
    if name == "failed":
        assert event["status_detail"] == "AccessDenied: no s3:PutBucketAcl" and event["severity_id"] == 4
    if name == "findings":
        assert event["severity_id"] == 5  # the critical finding
    if name == "delete":
        assert event["severity_id"] == 3
    json.dumps(event)  # JSON-serializable as is


def test_the_checker_is_not_toothless() -> None:
    event = dict(formatter("ocsf")(CASES[0][1]))
    for key in ("actor", "api", "src_endpoint", "metadata", "time"):
        assert ocsf_problems({k: v for k, v in event.items() if k != key})
    assert ocsf_problems({**event, "api": {"service": {"name": "x"}}})
    assert ocsf_problems({**event, "type_uid": 600399})
    assert ocsf_problems({**event, "src_endpoint": {"port": 1}})


# --- CloudEvents --------------------------------------------------------------------------------------------
@pytest.mark.parametrize(("name", "record"), [(c[0], c[1]) for c in CASES], ids=[c[0] for c in CASES])
def test_cloudevents_structured_mode(name: str, record: dict[str, Any]) -> None:
    event = dict(formatter("cloudevents")(record))
    jsonschema.validate(event, CE_SCHEMA, format_checker=jsonschema.Draft7Validator.FORMAT_CHECKER)
    assert event["specversion"] == "1.0" and event["type"] == "dev.tfaudit." + record["type"]
    assert event["source"] == "tfaudit:/srv/infra%20dir" and event["id"] == record["id"]
    # jsonschema has no uri checker installed here: check RFC 3986 syntax (scheme ":" and only URI characters)
    uri = r"[A-Za-z][A-Za-z0-9+.-]*:[A-Za-z0-9\-._~:/?#\[\]@!$&'()*+,;=%]*"
    assert re.fullmatch(uri, event["source"]) and re.fullmatch(uri, event["dataschema"])
    assert event["data"] == record  # the signed record travels whole
    for attr in event:
        if attr not in ("data",):
            assert re.fullmatch(r"[a-z0-9]{1,20}", attr), attr  # CloudEvents attribute naming
    assert isinstance(json.loads(json.dumps(event))["tfauditseq"], int)


def test_wire_formats_registry() -> None:
    assert {"native", "ocsf", "cloudevents"} <= set(WIRE_FORMATS)
    record = CASES[0][1]
    assert formatter("native")(record) is record
    with pytest.raises(UsageError, match="unknown record format"):
        formatter("cef")
