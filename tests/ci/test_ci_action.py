"""The composite action (action.yml), run step by step the way the GitHub Actions runner does.

Each `run:` step goes to `bash --noprofile --norc -eo pipefail` with the variables the runner
sets (GITHUB_ACTION_PATH, GITHUB_STEP_SUMMARY, GITHUB_OUTPUT, GITHUB_ENV, GITHUB_PATH,
RUNNER_TEMP, ...), `${{ inputs.* }}` / `${{ steps.*.outputs.* }}` expressions substituted
in `env:`, `if:` and `working-directory:`, and GITHUB_ENV/GITHUB_PATH carried to later steps.
The install step really pip-installs the action's own checkout, offline, from wheels of
this environment's packages.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

from conftest import FIXTURES, ROOT, require_terraform
from offline_pip import build_wheelhouse, offline_pip_env, snapshot_repo

pytestmark = [pytest.mark.slow, pytest.mark.terraform]

_EXPR = re.compile(r"\$\{\{\s*([^}]+?)\s*\}\}")


@dataclass
class Job:
    """One job's runner state: environment, PATH additions, and where files live."""

    root: Path
    action_path: Path
    base_env: dict[str, str]
    env: dict[str, str] = field(default_factory=dict)
    path: list[str] = field(default_factory=list)
    summary: Path = field(init=False)
    workspace: Path = field(init=False)
    temp: Path = field(init=False)
    logs: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.workspace = self.root / "workspace"
        self.temp = self.root / "runner-temp"
        self.workspace.mkdir(parents=True)
        self.temp.mkdir()
        self.summary = self.root / "step_summary.md"
        self.summary.touch()

    def uses(self, inputs: dict[str, str]) -> dict[str, Any]:
        """`- uses: ./tfaudit-action` with `with: inputs`; returns outputs, per-step results and logs."""
        spec = yaml.safe_load((self.action_path / "action.yml").read_text())
        declared = spec["inputs"]
        unknown = set(inputs) - set(declared)
        assert not unknown, f"action has no inputs {unknown}"
        missing = [k for k, v in declared.items() if v.get("required") and k not in inputs]
        assert not missing, f"required inputs missing: {missing}"
        values = {k: inputs.get(k, str(v.get("default", ""))) for k, v in declared.items()}
        steps: dict[str, dict[str, str]] = {}
        results = []
        failed = False

        def expr(text: str) -> str:
            def one(m: re.Match[str]) -> str:
                e = m.group(1)
                if e.startswith("inputs."):
                    return values[e[7:]]
                if e == "github.action_path":
                    return str(self.action_path)
                sm = re.fullmatch(r"steps\.([\w-]+)\.outputs\.([\w-]+)", e)
                if sm:
                    return steps.get(sm.group(1), {}).get(sm.group(2), "")
                raise AssertionError(f"expression not simulated: {e}")
            return _EXPR.sub(one, str(text))

        def condition(text: str) -> bool:
            m = re.fullmatch(r"inputs\.([\w-]+) != ''", text.strip())
            assert m, f"if: not simulated: {text}"
            return values[m.group(1)] != ""

        for i, step in enumerate(spec["runs"]["steps"]):
            if "uses" in step:
                # the only action used is the pip cache; a fresh runner misses it (a hit only saves time)
                assert step["uses"] == "actions/cache@v4", step["uses"]
                assert expr(step["with"]["path"]) and expr(step["with"]["key"]).startswith("tfaudit-pip-")
                results.append((step.get("name"), 0))
                continue
            assert step.get("shell") == "bash", "every run step names its shell"
            script = step["run"]
            # inputs must reach scripts through env:, never pasted into the script text
            assert "${{" not in script, f"step {step.get('name')} interpolates an expression into its script"
            if "if" in step and not condition(step["if"]):
                continue
            if failed:
                continue
            out_file = self.root / f"output-{len(self.logs)}-{i}"
            env_file = self.root / "github_env"
            path_file = self.root / "github_path"
            for f in (out_file, env_file, path_file):
                f.touch()
            env = {**self.base_env, **self.env, **{k: expr(v) for k, v in (step.get("env") or {}).items()},
                   "CI": "true", "GITHUB_ACTIONS": "true", "GITHUB_WORKSPACE": str(self.workspace),
                   "GITHUB_ACTION_PATH": str(self.action_path), "GITHUB_STEP_SUMMARY": str(self.summary),
                   "GITHUB_OUTPUT": str(out_file), "GITHUB_ENV": str(env_file), "GITHUB_PATH": str(path_file),
                   "RUNNER_TEMP": str(self.temp), "GITHUB_REPOSITORY": "acme/infra", "GITHUB_RUN_ID": "777",
                   "GITHUB_REF": "refs/heads/main", "GITHUB_ACTOR": "octocat", "GITHUB_WORKFLOW": "deploy",
                   "GITHUB_SERVER_URL": "https://github.com", "GITHUB_EVENT_NAME": "push"}
            env["PATH"] = os.pathsep.join([*reversed(self.path), self.base_env["PATH"]])
            cwd = self.workspace / expr(step.get("working-directory", "."))
            script_file = self.root / f"step-{len(self.logs)}-{i}.sh"
            script_file.write_text(script)
            res = subprocess.run(["bash", "--noprofile", "--norc", "-eo", "pipefail", str(script_file)], cwd=cwd,
                                 env=env, capture_output=True, text=True, timeout=600)
            self.logs.append(f"--- {step.get('name')} (exit {res.returncode})\n{res.stdout}{res.stderr}")
            results.append((step.get("name"), res.returncode))
            if step.get("id"):
                steps[step["id"]] = _parse_kv(out_file.read_text())
            self.env.update(_parse_kv(env_file.read_text()))
            self.path += [p for p in path_file.read_text().splitlines() if p.strip()]
            failed = res.returncode != 0
        outputs = {k: expr(v["value"]) for k, v in spec["outputs"].items()}
        return {"outputs": outputs, "steps": results, "failed": failed, "log": self.logs[-1] if self.logs else ""}


def _parse_kv(text: str) -> dict[str, str]:
    """GITHUB_OUTPUT / GITHUB_ENV syntax: key=value lines and key<<DELIM heredocs."""
    out: dict[str, str] = {}
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        line = lines[i]
        if "<<" in line and ("=" not in line or line.index("<<") < line.index("=")):
            key, delim = line.split("<<", 1)
            body = []
            i += 1
            while lines[i] != delim:
                body.append(lines[i])
                i += 1
            out[key] = "\n".join(body)
        elif "=" in line:
            key, value = line.split("=", 1)
            out[key] = value
        i += 1
    return out


@pytest.fixture(scope="module")
def job(tmp_path_factory: pytest.TempPathFactory) -> Job:
    require_terraform()
    base = tmp_path_factory.getbasetemp()
    wheels = build_wheelhouse(base / "wheelhouse", ROOT / "pyproject.toml")
    root = tmp_path_factory.mktemp("gha")
    action = snapshot_repo(ROOT, root / "_actions" / "acme" / "tfaudit" / "v1")
    home = root / "home"
    tfrc = root / "terraformrc"
    tfrc.write_text("")
    env = {"PATH": os.environ["PATH"], "HOME": str(home), "LANG": "C.UTF-8", "TF_CLI_CONFIG_FILE": str(tfrc),
           "TF_IN_AUTOMATION": "1", "CHECKPOINT_DISABLE": "1", "USER": "runner", **offline_pip_env(wheels)}
    j = Job(root, action, env)
    shutil.copytree(FIXTURES / "quickstart", j.workspace / "infra")
    return j


@pytest.fixture(scope="module")
def signing_pem(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, Path]:
    from tfaudit.trail.signing import generate_keypair

    priv, pub = generate_keypair(tmp_path_factory.mktemp("ghakey") / "key")
    return priv.read_text(), pub


def test_plan_on_pull_request_then_apply_on_merge(job: Job, signing_pem: tuple[str, Path]) -> None:
    pem, pub = signing_pem
    # PR: plan
    plan = job.uses({"command": "plan -out=plan.tfplan", "working-directory": "infra", "signing-key": pem})
    assert not plan["failed"], "\n".join(job.logs)
    assert [name for name, _ in plan["steps"]] == ["Cache key", "pip cache", "Install tfaudit", "Signing key", "Run tfaudit"]
    out = plan["outputs"]
    assert out["outcome"] == "planned" and out["exit-code"] == "0" and out["records"] == "1"
    assert out["changes"] == "4" and len(out["run-id"]) == 32 and len(out["plan-sha256"]) == 64
    summary = job.summary.read_text()
    assert "### tfaudit plan: 📝 planned" in summary and "| plan | 4 create;" in summary
    assert "`terraform_data.database` | create" in summary
    assert "| actor | octocat via github_actions (acme/infra refs/heads/main) |" in summary
    key_file = job.temp / "tfaudit-signing-key"
    assert oct(key_file.stat().st_mode & 0o777) == "0o600"
    assert pem not in "\n".join(job.logs)

    # merge: apply the saved plan (the action installed tfaudit once for the job)
    apply = job.uses({"command": "apply plan.tfplan", "working-directory": "infra", "signing-key": pem})
    assert not apply["failed"], "\n".join(job.logs)
    assert "tfaudit already installed" in job.logs[-3]
    out = apply["outputs"]
    assert (out["outcome"], out["exit-code"], out["records"], out["changes"], out["succeeded"], out["failed"]) == (
        "succeeded", "0", "6", "4", "4", "0")
    summary = job.summary.read_text()
    assert "### tfaudit apply: ✅ succeeded" in summary and "recorded by plan run" in summary
    assert "| result | 4 succeeded (exit 0) |" in summary

    # the trail the two steps wrote verifies
    ledger = job.workspace / "infra" / ".tfaudit" / "ledger.jsonl"
    res = subprocess.run([str(job.temp / "tfaudit-venv" / "bin" / "tfaudit"), "verify", str(ledger),
                          "--public-key", str(pub)], capture_output=True, text=True, env=job.base_env)
    assert res.returncode == 0, res.stdout + res.stderr


def test_a_failing_command_still_sets_outputs_and_fails_the_step(job: Job, signing_pem: tuple[str, Path]) -> None:
    res = job.uses({"command": "apply -auto-approve -var-file=missing.tfvars", "working-directory": "infra",
                    "signing-key": signing_pem[0]})
    assert res["failed"] and res["steps"][-1] == ("Run tfaudit", 1)
    assert res["outputs"]["outcome"] == "failed" and res["outputs"]["exit-code"] == "1"
    assert res["outputs"]["records"] == "2"  # run.started + run.finished: nothing applied
    assert "### tfaudit apply: ❌ failed" in job.summary.read_text()


def test_the_command_input_is_never_run_by_a_shell(job: Job, signing_pem: tuple[str, Path]) -> None:
    pwned = job.root / "pwned"
    res = job.uses({"command": f"plan; touch {pwned}", "working-directory": "infra", "signing-key": signing_pem[0]})
    assert res["failed"] and not pwned.exists()
    # `plan;` is no command of tfaudit's, so terraform answers it ("no command named"), exit 1
    assert res["outputs"]["outcome"] == "error" and res["outputs"]["exit-code"] == "1"


def test_comment_input_posts_one_pull_request_comment_and_updates_it(job: Job, signing_pem: tuple[str, Path]) -> None:
    import json

    from forge_server import forge_server

    shutil.copytree(FIXTURES / "quickstart", job.workspace / "infra-pr")
    event = job.root / "event.json"
    event.write_text(json.dumps({"pull_request": {"number": 12}}))
    token = "ghs_" + "A1b2C3d4" * 5
    with forge_server(token) as (url, state):
        job.base_env.update({"GITHUB_API_URL": url, "GITHUB_EVENT_PATH": str(event)})
        try:
            inputs = {"command": "plan -out=plan.tfplan", "working-directory": "infra-pr",
                      "signing-key": signing_pem[0], "comment": "true", "github-token": token}
            first = job.uses(inputs)
            assert not first["failed"], "\n".join(job.logs)
            second = job.uses(inputs)
            assert not second["failed"], "\n".join(job.logs)
        finally:
            del job.base_env["GITHUB_API_URL"], job.base_env["GITHUB_EVENT_PATH"]
        comments = state.on("acme/infra#12")
        assert len(comments) == 1 and first["outputs"]["outcome"] == "planned"
        body = comments[0]["body"]
        assert body.startswith('<!-- tfaudit:comment key="infra-pr@default" -->')
        assert "**Plan:** 4 to create" in body and "+   + terraform_data.database  (create)" in body
        assert state.labels["acme/infra#12"] == {"add-or-update"}
        assert token not in "\n".join(job.logs)
