"""Who the cloud thinks ran terraform: the AWS caller identity, for `actor.cloud`.

Asked only when AWS credentials are configured (env or shared files; checked without
importing boto3) and `identity { aws = true }` (the default). One STS
`GetCallerIdentity` call with short timeouts and no retries; any failure is noted in the
record (`actor.cloud.aws.error`) and never stops the run.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from tfaudit import _aws

CONNECT_TIMEOUT_SECONDS = 2.0
READ_TIMEOUT_SECONDS = 3.0


def cloud_identity(env: Mapping[str, str]) -> dict[str, Any] | None:
    """`actor.cloud`: {"aws": {"account", "arn", "user_id"}} or {"aws": {"error": ...}}; None without credentials."""
    if not _aws.has_credentials(env):
        return None
    return {"aws": aws_caller_identity(env)}


def aws_caller_identity(env: Mapping[str, str]) -> dict[str, Any]:
    try:
        client = _aws.client("sts", _aws.AwsSettings(), env, connect_timeout=CONNECT_TIMEOUT_SECONDS,
                             read_timeout=READ_TIMEOUT_SECONDS, max_attempts=1, default_region="us-east-1")
        resp = client.get_caller_identity()
    except ImportError:
        return {"account": None, "arn": None, "user_id": None, "error": "boto3 is not installed"}
    except Exception as e:  # noqa: BLE001 - identity is best effort: any failure is recorded, never raised
        return {"account": None, "arn": None, "user_id": None, "error": _aws.error_text(e)[:300]}
    return {"account": resp.get("Account"), "arn": resp.get("Arn"), "user_id": resp.get("UserId"), "error": None}
