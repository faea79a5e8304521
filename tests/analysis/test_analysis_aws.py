"""Risk findings, gates and drift on plans from real terraform with the AWS provider against moto.

One module-scoped run of fixtures/aws-risk (AWS plans take ~10 s each, so every test here
reads the same handful of terraform runs): apply the base stage, change a bucket's tags
behind terraform's back, `tfaudit drift`, plan the risky and the clean stage, then try to
apply the risky plan with `--fail-on high`.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from conftest import MotoServer, read_ledger, require_terraform
from analysis.test_analysis_outputs import assert_valid_sarif

pytestmark = [pytest.mark.slow, pytest.mark.terraform]

RISKY = {
    ("network.world-ingress-admin", "aws_security_group.ssh[0]", "critical"),
    ("network.world-ingress-admin", "aws_vpc_security_group_ingress_rule.rdp[0]", "critical"),
    ("iam.admin-policy-attached", "aws_iam_role_policy_attachment.admin[0]", "critical"),
    ("iam.policy-full-admin", "aws_iam_role_policy.everything[0]", "critical"),
    ("data.public-access-block-removed", "aws_s3_bucket_public_access_block.data[0]", "high"),
    ("destroy.delete", "aws_s3_bucket_public_access_block.data[0]", "medium"),
    ("audit.cloudtrail-deleted", "aws_cloudtrail.main[0]", "critical"),
    ("destroy.delete", "aws_cloudtrail.main[0]", "medium"),
    ("audit.log-group-deleted", "aws_cloudwatch_log_group.audit[0]", "high"),
    ("destroy.stateful-delete", "aws_cloudwatch_log_group.audit[0]", "high"),
    ("audit.versioning-disabled", "aws_s3_bucket_versioning.data", "high"),
    ("audit.kms-rotation-disabled", "aws_kms_key.logs", "medium"),
}


class Run:
    def __init__(self, rc: int, stdout: str, stderr: str) -> None:
        self.returncode, self.stdout, self.stderr = rc, stdout, stderr

    @property
    def output(self) -> str:
        return self.stdout + self.stderr


@pytest.fixture(scope="module")
def aws(_initialized: Callable[[str], Path], moto_server: MotoServer, base_env: dict[str, str],
        tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    from tfaudit.trail.signing import generate_keypair

    src = _initialized("aws-risk")
    work = tmp_path_factory.mktemp("aws-risk") / "cfg"
    shutil.copytree(src, work, symlinks=True)
    priv, pub = generate_keypair(tmp_path_factory.mktemp("aws-keys") / "signing-key")
    env = {**base_env, "TFAUDIT_SIGNING_KEY": str(priv)}
    suffix = uuid.uuid4().hex[:10]
    tfvars = ["-var", f"endpoint={moto_server.url}", "-var", f"suffix={suffix}"]

    def tfaudit(*args: str) -> Run:
        res = subprocess.run([sys.executable, "-m", "tfaudit", *args], cwd=work, env=env, capture_output=True,
                             text=True, timeout=600)
        return Run(res.returncode, res.stdout, res.stderr)

    out: dict[str, Any] = {"work": work, "suffix": suffix, "pub": pub, "ledger": work / ".tfaudit" / "ledger.jsonl",
                           "tfaudit": tfaudit}
    base = tfaudit("apply", "-auto-approve", *tfvars)
    assert base.returncode == 0, base.output
    moto_server.client("s3").put_bucket_tagging(Bucket=f"tfaudit-data-{suffix}", Tagging={"TagSet": [
        {"Key": "team", "Value": "intruder"}, {"Key": "stage", "Value": "base"}]})
    out["drift"] = tfaudit("drift", *tfvars)
    out["risky_plan"] = tfaudit("plan", "-out=risky.tfplan", *tfvars, "-var", "stage=risky")
    assert out["risky_plan"].returncode == 0, out["risky_plan"].output
    out["clean_plan"] = tfaudit("plan", "-refresh=false", "-out=clean.tfplan", *tfvars, "-var", "stage=clean")
    assert out["clean_plan"].returncode == 0, out["clean_plan"].output
    out["blocked"] = tfaudit("apply", "--fail-on", "high", "risky.tfplan")
    out["analyze_binary"] = tfaudit("analyze", "risky.tfplan", "--format", "json")
    show = subprocess.run([require_terraform(), "show", "-json", "risky.tfplan"], cwd=work, env=base_env,
                          capture_output=True, timeout=300, check=True)
    (work / "risky.json").write_bytes(show.stdout)
    out["records"] = read_ledger(out["ledger"])
    return out


def _last(recs: list[dict[str, Any]], rtype: str, **run: str) -> dict[str, Any]:
    return [r for r in recs if r["type"] == rtype and all(r["run"].get(k) == v for k, v in run.items())][-1]


def test_risky_plan_flags_each_exposure_by_rule_and_severity(aws: dict[str, Any]) -> None:
    res = aws["analyze_binary"]
    assert res.returncode == 0, res.output  # no gate asked for: findings alone do not fail
    doc = json.loads(res.stdout)
    assert {(f["rule"], f["address"], f["severity"]) for f in doc["findings"]} == RISKY
    assert len(doc["findings"]) == len(RISKY)
    assert doc["summary"]["create"] == 4 and doc["summary"]["delete"] == 3
    # tfaudit plan recorded the same findings with the plan
    rec = _last(aws["records"], "plan.recorded", plan_file="risky.tfplan")
    assert {(f["rule"], f["address"], f["severity"]) for f in rec["findings"]} == RISKY


def test_clean_plan_has_none_of_them(aws: dict[str, Any]) -> None:
    rec = _last(aws["records"], "plan.recorded", plan_file="clean.tfplan")
    assert rec["plan"]["summary"] == {"create": 2, "update": 1}
    assert "findings" not in rec
    assert "finding" not in aws["clean_plan"].stderr


def test_fail_on_high_stops_the_risky_apply_and_aws_is_untouched(aws: dict[str, Any], moto_server: MotoServer) -> None:
    res, suffix = aws["blocked"], aws["suffix"]
    assert res.returncode == 5, res.output
    assert "blocked by policy: 9 findings at or above high (--fail-on)" in res.stderr
    finished = _last(aws["records"], "run.finished", command="apply", plan_file="risky.tfplan")
    assert finished["outcome"]["status"] == "blocked" and finished["outcome"]["exit_code"] == 5
    started = _last(aws["records"], "run.started", id=finished["run"]["id"])
    assert {(f["rule"], f["address"], f["severity"]) for f in started["findings"]} == RISKY
    ec2, iam, s3 = moto_server.client("ec2"), moto_server.client("iam"), moto_server.client("s3")
    groups = ec2.describe_security_groups(Filters=[{"Name": "group-name", "Values": [f"tfaudit-ssh-{suffix}"]}])
    assert groups["SecurityGroups"] == []
    assert iam.list_attached_role_policies(RoleName=f"tfaudit-app-{suffix}")["AttachedPolicies"] == []
    assert iam.list_role_policies(RoleName=f"tfaudit-app-{suffix}")["PolicyNames"] == []
    trails = moto_server.client("cloudtrail").describe_trails(trailNameList=[f"tfaudit-trail-{suffix}"])["trailList"]
    assert [t["Name"] for t in trails] == [f"tfaudit-trail-{suffix}"]
    pab = s3.get_public_access_block(Bucket=f"tfaudit-data-{suffix}")["PublicAccessBlockConfiguration"]
    assert all(pab.values())
    assert s3.get_bucket_versioning(Bucket=f"tfaudit-data-{suffix}")["Status"] == "Enabled"


def test_drift_reports_a_change_made_through_the_aws_api(aws: dict[str, Any]) -> None:
    res = aws["drift"]
    assert res.returncode == 2, res.output
    assert "tfaudit: drift in" in res.stderr and "aws_s3_bucket.data: " in res.stderr
    drift = [r for r in aws["records"] if r["type"] == "drift.detected"]
    assert drift and all(r["run"]["command"] == "drift" for r in drift)
    assert len({r["run"]["id"] for r in drift}) == 1
    bucket = next(r["detail"] for r in drift if r["detail"]["address"] == "aws_s3_bucket.data")
    assert bucket["actions"] == ["update"] and bucket["type"] == "aws_s3_bucket"
    assert "tags.team" in bucket["changed_paths"]
    assert bucket["before"]["tags"]["team"] == "platform" and bucket["after"]["tags"]["team"] == "intruder"
    # a refresh-only plan writes no state: nothing counts as out of band afterwards
    assert [r for r in aws["records"] if r["type"] == "state.out_of_band"] == []


def test_every_recorded_plan_records_its_resource_drift(aws: dict[str, Any]) -> None:
    rec = _last(aws["records"], "plan.recorded", plan_file="risky.tfplan")
    bucket = next(d for d in rec["plan"]["resource_drift"] if d["address"] == "aws_s3_bucket.data")
    assert "tags.team" in bucket["changed_paths"]


def test_every_output_format_on_the_real_aws_plan(aws: dict[str, Any]) -> None:
    plan = str(aws["work"] / "risky.json")
    table = aws["tfaudit"]("analyze", plan)
    assert table.returncode == 0
    assert "Findings: 5 critical, 4 high, 3 medium" in table.stdout
    assert "ingress open to the internet: tcp port 22 from 0.0.0.0/0, SSH (22)" in table.stdout
    md = aws["tfaudit"]("analyze", plan, "--format", "markdown", "--fail-on", "critical")
    assert md.returncode == 5
    assert md.stdout.startswith("### tfaudit plan analysis\n\n> **Blocked by policy** (exit 5): 5 findings at or above critical")
    assert "| **critical** | `audit.cloudtrail-deleted` | `aws_cloudtrail.main[0]` | trail deleted |" in md.stdout
    sarif = aws["tfaudit"]("analyze", plan, "--format", "sarif")
    doc = json.loads(sarif.stdout)
    assert_valid_sarif(doc)
    results = doc["runs"][0]["results"]
    assert {(r["ruleId"], r["locations"][0]["logicalLocations"][0]["fullyQualifiedName"]) for r in results} == {
        (rule, addr) for rule, addr, _ in RISKY}
    assert {r["level"] for r in results if r["properties"]["severity"] in ("critical", "high")} == {"error"}
