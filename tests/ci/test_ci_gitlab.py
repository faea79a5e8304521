"""The GitLab CI template, run as GitLab's shell executor would: variables expanded, before_script and
script in one bash session (stopping at the first failing line), artifacts handed to the next job."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from conftest import FIXTURES, ROOT, require_terraform
from forge_server import forge_server
from offline_pip import build_wheelhouse, offline_pip_env, snapshot_repo

pytestmark = [pytest.mark.slow, pytest.mark.terraform]

TEMPLATE = ROOT / "ci" / "gitlab" / "tfaudit.gitlab-ci.yml"
_VAR = re.compile(r"\$\{(\w+)\}|\$(\w+)")


def _job(doc: dict[str, Any], name: str) -> dict[str, Any]:
    """Resolve `extends:` the way GitLab does: deep-merge hashes, later keys win, lists replaced."""
    job = doc[name]
    base: dict[str, Any] = {}
    parent = job.get("extends")
    if parent:
        base = _job(doc, parent)
    return _merge(base, {k: v for k, v in job.items() if k != "extends"})


def _merge(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    out = dict(a)
    for k, v in b.items():
        out[k] = _merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def _expand(value: str, variables: dict[str, str]) -> str:
    return _VAR.sub(lambda m: variables.get(m.group(1) or m.group(2), ""), value)


def run_job(name: str, project: Path, predefined: dict[str, str], overrides: dict[str, str]) -> tuple[int, str]:
    doc = yaml.safe_load(TEMPLATE.read_text())
    job = _job(doc, name)
    variables = {**predefined, **{k: str(v) for k, v in doc["variables"].items()},
                 **{k: str(v) for k, v in (job.get("variables") or {}).items()}, **overrides}
    for _ in range(3):  # variables may reference variables
        variables = {k: _expand(v, variables) for k, v in variables.items()}
    script = "\n".join(["set -eo pipefail", *job["before_script"], *job["script"]])
    res = subprocess.run(["bash", "--noprofile", "--norc", "-c", script], cwd=project, env=variables,
                         capture_output=True, text=True, timeout=600)
    after = subprocess.run(["bash", "--noprofile", "--norc", "-c", "\n".join(job.get("after_script") or [])],
                           cwd=project, env=variables, capture_output=True, text=True, timeout=60)
    assert after.returncode == 0, after.stderr
    return res.returncode, res.stdout + res.stderr


def _artifacts(name: str, project: Path, variables: dict[str, str]) -> list[str]:
    job = _job(yaml.safe_load(TEMPLATE.read_text()), name)
    return [_expand(p, {**variables}) for p in job["artifacts"]["paths"]] + list(job["artifacts"]["reports"].values())


def test_template_follows_gitlabs_terraform_template_conventions() -> None:
    doc = yaml.safe_load(TEMPLATE.read_text())
    plan, apply = _job(doc, ".tfaudit-plan"), _job(doc, ".tfaudit-apply")
    assert apply["rules"] == [{"if": "$CI_COMMIT_BRANCH == $CI_DEFAULT_BRANCH", "when": "manual"}]
    assert apply["environment"] == {"name": "${TFAUDIT_ENVIRONMENT}", "action": "start"}
    assert plan["resource_group"] == apply["resource_group"] == "${TFAUDIT_ENVIRONMENT}"
    assert plan["artifacts"]["reports"]["terraform"] == "tfaudit-plan.json"
    assert "pip install tfaudit" not in TEMPLATE.read_text() and doc["variables"]["TFAUDIT_SOURCE"] == ""
    assert "requirements.lock" in "\n".join(plan["before_script"])


def _dotenv(path: Path) -> dict[str, str]:
    return dict(line.split("=", 1) for line in path.read_text().splitlines() if "=" in line)


def test_template_plans_then_applies_with_artifacts(tmp_path: Path, tmp_path_factory: pytest.TempPathFactory) -> None:
    require_terraform()
    from tfaudit.trail.signing import generate_keypair

    wheels = build_wheelhouse(tmp_path_factory.getbasetemp() / "wheelhouse", ROOT / "pyproject.toml")
    source = snapshot_repo(ROOT, tmp_path / "tfaudit-src")
    priv, pub = generate_keypair(tmp_path / "key")
    tfrc = tmp_path / "terraformrc"
    tfrc.write_text("")
    predefined = {"PATH": os.environ["PATH"], "HOME": str(tmp_path / "home"), "LANG": "C.UTF-8", "USER": "runner",
                  "CI": "true", "GITLAB_CI": "true", "CI_PIPELINE_ID": "9001", "CI_PROJECT_PATH": "acme/infra",
                  "CI_COMMIT_BRANCH": "main", "CI_DEFAULT_BRANCH": "main", "CI_PIPELINE_SOURCE": "push",
                  "GITLAB_USER_LOGIN": "alice", "CI_JOB_NAME": "plan", "TF_CLI_CONFIG_FILE": str(tfrc),
                  "TF_IN_AUTOMATION": "1", "CHECKPOINT_DISABLE": "1", **offline_pip_env(wheels)}

    # job 1: plan, in its own checkout
    plan_dir = tmp_path / "plan-job"
    shutil.copytree(FIXTURES / "quickstart", plan_dir / "infra")
    token = "glpat-" + "Zz9" * 8
    with forge_server(token) as (url, forge):
        over = {"CI_PROJECT_DIR": str(plan_dir), "TFAUDIT_SOURCE": str(source), "TFAUDIT_WORKDIR": "infra",
                "TFAUDIT_SIGNING_KEY_PEM": priv.read_text(), "CI_API_V4_URL": url + "/api/v4",
                "GITLAB_TOKEN": token, "CI_PROJECT_ID": "acme/infra", "CI_MERGE_REQUEST_IID": "4"}
        rc, log = run_job(".tfaudit-plan", plan_dir, predefined, over)
    assert rc == 0, log
    notes = forge.on("acme/infra!4")  # the merge request note, written by the template's ci run
    assert len(notes) == 1 and notes[0]["body"].startswith('<!-- tfaudit:comment key="infra@default" -->')
    assert "**Plan:** 4 to create" in notes[0]["body"] and forge.labels["acme/infra!4"] == {"add-or-update"}
    assert token not in log
    env = _dotenv(plan_dir / "tfaudit.env")
    assert env["TFAUDIT_OUTCOME"] == "planned" and env["TFAUDIT_RECORDS"] == "1" and env["TFAUDIT_CHANGES"] == "4"
    summary = (plan_dir / "tfaudit-summary.md").read_text()
    assert "### tfaudit plan: 📝 planned" in summary and "alice via gitlab_ci (acme/infra refs/heads/main)" in summary
    assert not (plan_dir / ".tfaudit-signing-key").exists()  # after_script removed it
    report = json.loads((plan_dir / "tfaudit-plan.json").read_text())
    assert report == {"create": 4, "update": 0, "delete": 0}  # what GitLab's merge request widget reads
    assert priv.read_text().strip().splitlines()[1] not in log

    # job 2: apply, in a fresh checkout that receives the plan job's artifacts; this image has tfaudit
    apply_dir = tmp_path / "apply-job"
    shutil.copytree(FIXTURES / "quickstart", apply_dir / "infra")
    for rel in _artifacts(".tfaudit-plan", plan_dir, {"TFAUDIT_WORKDIR": "infra", "TFAUDIT_PLAN_FILE": "plan.tfplan"}):
        src = plan_dir / rel
        (shutil.copytree if src.is_dir() else shutil.copy2)(src, apply_dir / rel, **({"dirs_exist_ok": True} if src.is_dir() else {}))
    image_path = f"{plan_dir / '.tfaudit-venv' / 'bin'}{os.pathsep}{os.environ['PATH']}"
    over = {"CI_PROJECT_DIR": str(apply_dir), "TFAUDIT_SOURCE": "", "TFAUDIT_WORKDIR": "infra",
            "TFAUDIT_SIGNING_KEY_PEM": priv.read_text(), "PATH": image_path, "CI_JOB_NAME": "apply",
            "TFAUDIT_COMMENT": "false"}
    rc, log = run_job(".tfaudit-apply", apply_dir, predefined, over)
    assert rc == 0, log
    env = _dotenv(apply_dir / "tfaudit.env")
    assert (env["TFAUDIT_OUTCOME"], env["TFAUDIT_RECORDS"], env["TFAUDIT_SUCCEEDED"]) == ("succeeded", "6", "4")
    assert "recorded by plan run" in (apply_dir / "tfaudit-summary.md").read_text()
    ledger = apply_dir / "infra" / ".tfaudit" / "ledger.jsonl"
    res = subprocess.run([str(plan_dir / ".tfaudit-venv" / "bin" / "tfaudit"), "verify", str(ledger),
                          "--public-key", str(pub)], capture_output=True, text=True)
    assert res.returncode == 0, res.stdout + res.stderr


def test_image_without_tfaudit_fails_before_terraform(tmp_path: Path) -> None:
    project = tmp_path / "p"
    project.mkdir()
    rc, log = run_job(".tfaudit-apply", project, {"PATH": "/usr/bin:/bin", "CI_PROJECT_DIR": str(project)},
                      {"TFAUDIT_SOURCE": ""})
    assert rc == 127 and "tfaudit: command not found" in log
