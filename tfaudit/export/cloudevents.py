"""One ledger record as a CloudEvents 1.0 event in structured mode (the JSON event format).

The record travels whole, signature and chain included, as `data`, so a receiver can verify
it; the context attributes make it routable without opening `data`. Over HTTP, structured
mode is a POST with `Content-Type: application/cloudevents+json` (CONTENT_TYPE).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

from tfaudit.schema import RecordType

SPEC_VERSION = "1.0"
CONTENT_TYPE = "application/cloudevents+json; charset=utf-8"
TYPE_PREFIX = "dev.tfaudit."
DATA_SCHEMA = "https://tfaudit.dev/schema/record/v1.json"  # the $id of tfaudit/schema/record.schema.json


def to_cloudevent(record: Mapping[str, Any]) -> Mapping[str, Any]:
    run = record.get("run") or {}
    chain = record.get("chain") or {}
    rtype = str(record.get("type") or "record")
    # source: the terraform working directory as a URI reference; id: the record id, unique within it
    working_dir = str(run.get("working_dir") or "/")
    event: dict[str, Any] = {
        "specversion": SPEC_VERSION,
        "id": str(record.get("id")),
        "source": "tfaudit:" + quote(working_dir, safe="/:@-._~"),
        "type": TYPE_PREFIX + rtype,
        "time": record.get("time"),
        "datacontenttype": "application/json",
        "dataschema": DATA_SCHEMA,
        "data": dict(record),
        # extension attributes: lowercase letters and digits only (CloudEvents 1.0, "Attribute Naming Convention")
        "tfauditrunid": str(run.get("id") or ""),
        "tfauditseq": int(chain.get("seq") or 0),
        "tfauditworkspace": str(run.get("workspace") or ""),
    }
    subject = (record.get("resource") or {}).get("address") if rtype == RecordType.RESOURCE_CHANGED else run.get("id")
    if subject:
        event["subject"] = str(subject)
    return event
