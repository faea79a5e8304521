"""Each run as an in-toto Statement v1 in a DSSE envelope, signed with the ledger's key.

Subjects: the plan file (its sha256, as recorded), the state before and after the run (the
sha256 of `terraform state pull`), and the run's ledger lines themselves. The predicate
(type PREDICATE_TYPE) holds the run's records exactly as in the ledger, each still carrying
its own signature and chain position. Output is one envelope per line (an in-toto bundle).

DSSE (github.com/secure-systems-lab/dsse, protocol.md): the signature covers
PAE(payloadType, payload) = "DSSEv1" SP LEN(type) SP type SP LEN(body) SP body.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tfaudit.errors import InputError, VerificationError
from tfaudit.schema import RecordType
from tfaudit.trail.jsonline import BadLine, decode_value, parse_line
from tfaudit.trail.recordsig import SignatureProblem, verify_record
from tfaudit.trail.signing import Signer, Verifier, canonical, signer_key_id

PAYLOAD_TYPE = "application/vnd.in-toto+json"
STATEMENT_TYPE = "https://in-toto.io/Statement/v1"
PREDICATE_TYPE = "https://tfaudit.dev/attestation/run/v1"


def pae(payload_type: str, payload: bytes) -> bytes:
    """DSSE v1 Pre-Authentication Encoding; lengths are byte lengths in ASCII decimal."""
    t = payload_type.encode("utf-8")
    return b"DSSEv1 %d %s %d %s" % (len(t), t, len(payload), payload)


def b64decode_any(value: str) -> bytes:
    """Standard or URL-safe base64, padded or not: DSSE verifiers MUST accept either."""
    s = value.strip()
    s += "=" * (-len(s) % 4)
    alt = b"-_" if ("-" in s or "_" in s) else None
    try:
        return base64.b64decode(s, altchars=alt, validate=True)
    except (binascii.Error, ValueError):
        raise VerificationError("envelope: a base64 field is not valid base64") from None


# --- building ---------------------------------------------------------------------------------
def _runs(records: Iterable[tuple[bytes, dict[str, Any]]]) -> Iterator[list[tuple[bytes, dict[str, Any]]]]:
    """Records grouped by run id, in ledger order of each run's first record."""
    groups: dict[str, list[tuple[bytes, dict[str, Any]]]] = {}
    for line, rec in records:
        rid = (rec.get("run") or {}).get("id")
        if isinstance(rid, str):
            groups.setdefault(rid, []).append((line, rec))
    yield from groups.values()


def _lines_digest(lines: Sequence[bytes]) -> str:
    return hashlib.sha256(b"".join(line + b"\n" for line in lines)).hexdigest()


def _subjects(run_id: str, lines: Sequence[bytes], recs: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    subjects: list[dict[str, Any]] = [{"name": f"tfaudit-run:{run_id}", "digest": {"sha256": _lines_digest(lines)},
                                       "mediaType": "application/jsonl"}]
    run = recs[0].get("run") or {}
    if run.get("plan_sha256"):
        subjects.append({"name": f"plan:{run.get('plan_file') or 'tfplan'}", "digest": {"sha256": run["plan_sha256"]}})
    finished = next((r for r in recs if r.get("type") == RecordType.RUN_FINISHED), None)
    state = ((finished or {}).get("outcome") or {}).get("state") or {}
    for when in ("before", "after"):
        ref = state.get(when)
        if isinstance(ref, Mapping) and ref.get("sha256"):
            subjects.append({"name": f"state:{when}:serial-{ref.get('serial')}", "digest": {"sha256": ref["sha256"]}})
    return subjects


def statement(lines: Sequence[bytes], recs: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    run = recs[0].get("run") or {}
    finished = next((r for r in recs if r.get("type") == RecordType.RUN_FINISHED), None)
    return {
        "_type": STATEMENT_TYPE,
        "subject": _subjects(str(run.get("id")), lines, recs),
        "predicateType": PREDICATE_TYPE,
        "predicate": {
            "run": dict(run),
            "actor": dict(recs[0].get("actor") or {}),
            "status": ((finished or {}).get("outcome") or {}).get("status", "unfinished"),
            "seq": [r.get("chain", {}).get("seq") for r in recs],
            "records": [dict(r) for r in recs],
        },
    }


def sign_envelope(stmt: Mapping[str, Any], signer: Signer) -> dict[str, Any]:
    payload = canonical(stmt)
    sig = signer.sign(pae(PAYLOAD_TYPE, payload))
    return {"payloadType": PAYLOAD_TYPE, "payload": base64.b64encode(payload).decode(),
            "signatures": [{"keyid": signer.key_id, "sig": base64.b64encode(sig).decode()}]}


def envelopes(ledger: Path, signer: Signer, run_prefix: str | None = None) -> Iterator[dict[str, Any]]:
    from tfaudit.trail.store import open_existing

    store = open_existing(ledger)

    def parsed() -> Iterator[tuple[bytes, dict[str, Any]]]:
        for _, raw in store.lines():
            line = raw.rstrip(b"\n")
            try:
                yield line, parse_line(line)
            except BadLine:
                continue

    for group in _runs(parsed()):
        run_id = str((group[0][1].get("run") or {}).get("id"))
        if run_prefix and not run_id.startswith(run_prefix):
            continue
        yield sign_envelope(statement([ln for ln, _ in group], [r for _, r in group]), signer)


# --- verifying --------------------------------------------------------------------------------
def open_envelope(env: Any, verifiers: Sequence[Verifier], *, threshold: int = 1,
                  payload_types: Sequence[str] = (PAYLOAD_TYPE,)) -> bytes:
    """The payload of a DSSE envelope signed by at least `threshold` distinct given keys; raises otherwise."""
    if not isinstance(env, Mapping) or not isinstance(env.get("payload"), str) \
            or not isinstance(env.get("payloadType"), str) or not isinstance(env.get("signatures"), list):
        raise VerificationError("not a DSSE envelope (payload, payloadType and signatures are required)")
    payload = b64decode_any(env["payload"])
    message = pae(env["payloadType"], payload)
    accepted: set[str] = set()
    for sig in env["signatures"]:
        if not isinstance(sig, Mapping) or not isinstance(sig.get("sig"), str):
            continue
        raw = b64decode_any(sig["sig"])
        hint = sig.get("keyid")
        for v in verifiers:
            if v.key_id in accepted or (hint and hint in {u.key_id for u in verifiers} and hint != v.key_id):
                continue
            try:
                v.verify(raw, message)
            except VerificationError:
                continue
            accepted.add(v.key_id)
            break
    if len(accepted) < threshold:
        raise VerificationError("envelope: no valid signature by the given public key(s)" if not accepted else
                                f"envelope: {len(accepted)} valid signature(s), {threshold} required")
    if env["payloadType"] not in payload_types:
        raise VerificationError(f"envelope: unsupported payloadType {env['payloadType']!r}")
    return payload


@dataclass
class EnvelopeReport:
    path: str
    envelopes: int = 0
    records: int = 0
    runs: list[str] = field(default_factory=list)
    problems: list[tuple[int, str]] = field(default_factory=list)  # (line of the file, message)

    @property
    def ok(self) -> bool:
        return not self.problems and self.envelopes > 0

    def as_dict(self) -> dict[str, Any]:
        return {"file": self.path, "ok": self.ok, "envelopes": self.envelopes, "records": self.records,
                "runs": self.runs, "problems": [{"line": n, "message": m} for n, m in self.problems]}


def _check_statement(payload: bytes, verifiers: Sequence[Verifier], ledger_lines: set[bytes] | None) -> tuple[str, int]:
    try:
        stmt = decode_value(payload)  # strict: no NaN, no deep nesting, no lone surrogates
    except BadLine as e:
        raise VerificationError(f"statement: payload is not strict JSON ({e.message})") from None
    if not isinstance(stmt, dict) or stmt.get("_type") != STATEMENT_TYPE:
        raise VerificationError(f"statement: _type is not {STATEMENT_TYPE}")
    if stmt.get("predicateType") != PREDICATE_TYPE:
        raise VerificationError(f"statement: predicateType {stmt.get('predicateType')!r} is not {PREDICATE_TYPE}")
    subjects = stmt.get("subject")
    if not isinstance(subjects, list) or not subjects or not all(
            isinstance(s, Mapping) and isinstance(s.get("digest"), Mapping) and s["digest"] for s in subjects):
        raise VerificationError("statement: subject must be a non-empty list with digests")
    recs = (stmt.get("predicate") or {}).get("records")
    if not isinstance(recs, list) or not recs or not all(isinstance(r, dict) for r in recs):
        raise VerificationError("statement: predicate.records is missing or empty")
    by_id = {v.key_id: v for v in verifiers}
    lines: list[bytes] = []
    for r in recs:
        try:
            verify_record(r, by_id)  # strict: version rules, canonical base64, alg bound to the key
        except SignatureProblem as e:
            if e.unknown_key:
                raise VerificationError(f"record {r.get('id')}: signed by {signer_key_id(r.get('signature') or {})}, "
                                        "not one of the given keys") from None
            what = "its signature does not match it (edited)" if "does not match" in e.message else e.message
            raise VerificationError(f"record {r.get('id')}: {what}") from None
        line = canonical(r)
        if ledger_lines is not None and line not in ledger_lines:
            raise VerificationError(f"record {r.get('id')} (seq {r.get('chain', {}).get('seq')}) is not in the ledger")
        lines.append(line)
    run_id = str((recs[0].get("run") or {}).get("id"))
    want = _subjects(run_id, lines, recs)
    got = sorted(json.dumps(s, sort_keys=True) for s in subjects)
    if got != sorted(json.dumps(s, sort_keys=True) for s in want):
        raise VerificationError("statement: the subjects do not match the digests in the run's records")
    return run_id, len(recs)


def verify_envelope_file(path: Path, verifiers: Sequence[Verifier], ledger: Path | None = None) -> EnvelopeReport:
    """Check every envelope in a file (one JSON envelope per line, or one JSON document)."""
    report = EnvelopeReport(str(path))
    try:
        text = path.read_text("utf-8")
    except FileNotFoundError:
        raise InputError(f"envelope file {path} does not exist") from None
    except (OSError, UnicodeDecodeError) as e:
        raise InputError(f"cannot read envelope file {path}: {e}") from e
    ledger_lines: set[bytes] | None = None
    if ledger is not None:
        from tfaudit.trail.store import read_lines

        ledger_lines = set(read_lines(ledger))
    docs: list[tuple[int, Any]] = []
    try:
        whole = json.loads(text)
        docs = [(1, e) for e in whole] if isinstance(whole, list) else [(1, whole)]
    except (ValueError, RecursionError):
        for n, line in enumerate(text.splitlines(), start=1):
            if line.strip():
                try:
                    docs.append((n, decode_value(line.encode("utf-8", "surrogatepass"))))
                except BadLine as e:
                    report.problems.append((n, f"not JSON ({e.message})"))
    for n, env in docs:
        report.envelopes += 1
        try:
            run_id, count = _check_statement(open_envelope(env, verifiers), verifiers, ledger_lines)
        except VerificationError as e:
            report.problems.append((n, str(e)))
            continue
        report.runs.append(run_id)
        report.records += count
    if not docs and not report.problems:
        report.problems.append((0, "no envelopes in the file"))
    return report
