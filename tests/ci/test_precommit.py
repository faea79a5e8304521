"""The pre-commit hooks with the real `pre-commit` against a temporary git repository: the hooks are
installed from this project's .pre-commit-hooks.yaml (offline, from local wheels), and real
`git commit`s are blocked or let through."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from conftest import ROOT, require_terraform
from offline_pip import build_wheelhouse, offline_pip_env, snapshot_repo
from tfaudit.ci.precommit import changed_roots

DENY_RULE = """rule "no-data-delete" {
  message        = "terraform_data is never deleted from a commit"
  severity       = "high"
  effect         = "deny"
  resource_types = ["terraform_data"]
  actions        = ["delete", "replace"]
}
"""


# --- which root modules a change touches (fast) ------------------------------------------------------
def _write(root: Path, files: dict[str, str]) -> None:
    for rel, text in files.items():
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text)


def test_changed_files_map_to_root_modules_once(tmp_path: Path) -> None:
    _write(tmp_path, {
        "live/prod/main.tf": 'module "net" {\n  source = "../../modules/net"\n}\n',
        "live/prod/envs/eu.tfvars": "region = \"eu\"\n",
        "live/dev/main.tf": 'module "net" {\n  source = "../../modules/net"\n}\nmodule "app" {\n  source = "./app"\n}\n',
        "live/dev/app/main.tf": 'module "deep" {\n  source = "../../../modules/deep"\n}\n',
        "modules/net/main.tf": 'resource "terraform_data" "n" {}\n',
        "modules/deep/main.tf": 'resource "terraform_data" "d" {}\n',
        "modules/unused/main.tf": 'resource "terraform_data" "u" {}\n',
        "live/prod/.terraform/modules/x/main.tf": "# terraform's own copy, never a module of ours\n",
        "docs/README.md": "docs\n",
    })
    roots = lambda *files: [p.relative_to(tmp_path).as_posix() for p in changed_roots(files, tmp_path)]  # noqa: E731
    assert roots("modules/net/main.tf") == ["live/dev", "live/prod"]
    assert roots("modules/deep/main.tf") == ["live/dev"]  # through live/dev/app
    assert roots("live/prod/envs/eu.tfvars", "live/prod/main.tf") == ["live/prod"]
    assert roots("modules/unused/main.tf") == ["modules/unused"]  # nobody uses it: a root of its own
    assert roots("docs/README.md") == []


# --- real pre-commit, real git, real terraform -------------------------------------------------
def _git(repo: Path, *args: str, env: dict[str, str], check: bool = True) -> subprocess.CompletedProcess[str]:
    res = subprocess.run(["git", *args], cwd=repo, env=env, capture_output=True, text=True, timeout=600)
    if check:
        assert res.returncode == 0, res.stdout + res.stderr
    return res


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory, base_env: dict[str, str]) -> dict[str, Any]:
    require_terraform()
    base = tmp_path_factory.getbasetemp()
    wheels = build_wheelhouse(base / "wheelhouse", ROOT / "pyproject.toml")
    root = tmp_path_factory.mktemp("precommit")
    env = {**base_env, **offline_pip_env(wheels), "PRE_COMMIT_HOME": str(root / "pre-commit-home"),
           "GIT_AUTHOR_NAME": "Alice", "GIT_AUTHOR_EMAIL": "alice@example.com",
           "GIT_COMMITTER_NAME": "Alice", "GIT_COMMITTER_EMAIL": "alice@example.com",
           "PATH": f"{Path(sys.executable).parent}{os.pathsep}{base_env['PATH']}"}

    # the hook repository: this project, committed, as `repo:` + `rev:` would fetch it
    hooks = snapshot_repo(ROOT, root / "tfaudit")
    _git(hooks, "init", "-q", env=env)
    _git(hooks, "add", "-A", env=env)
    _git(hooks, "commit", "-q", "-m", "tfaudit", env=env)
    rev = _git(hooks, "rev-parse", "HEAD", env=env).stdout.strip()

    # the user's infrastructure repository
    infra = root / "infra-repo"
    _write(infra, {
        "live/main.tf": 'module "net" {\n  source = "../modules/net"\n}\n'
                        'resource "terraform_data" "db" {\n  input = "v1"\n}\n',
        "live/.tfaudit.hcl": DENY_RULE,
        "modules/net/main.tf": 'resource "terraform_data" "net" {\n  input = "10.0.0.0/16"\n}\n',
        ".gitignore": ".terraform/\n*.tfstate*\n.tfaudit/\n",
        ".pre-commit-config.yaml": yaml.safe_dump({"repos": [{"repo": str(hooks), "rev": rev, "hooks": [
            {"id": "tfaudit-config"}, {"id": "tfaudit-plan", "args": ["--fail-on=critical"]}]}]}),
    })
    _git(infra, "init", "-q", env=env)
    res = subprocess.run([sys.executable, "-m", "pre_commit", "install"], cwd=infra, env=env,
                         capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stdout + res.stderr
    _git(infra, "add", ".gitignore", ".pre-commit-config.yaml", env=env)
    _git(infra, "commit", "-q", "--no-verify", "-m", "pre-commit config", env=env)
    return {"infra": infra, "env": env}


def _commit(repo: dict[str, Any], message: str) -> subprocess.CompletedProcess[str]:
    _git(repo["infra"], "add", "-A", env=repo["env"])
    return _git(repo["infra"], "commit", "-m", message, env=repo["env"], check=False)


def _head(repo: dict[str, Any]) -> str:
    return _git(repo["infra"], "log", "-1", "--format=%s", env=repo["env"]).stdout.strip()


@pytest.mark.slow
@pytest.mark.terraform
def test_commits_pass_or_are_blocked(repo: dict[str, Any]) -> None:
    infra = repo["infra"]
    hook_venvs = Path(repo["env"]["PRE_COMMIT_HOME"])

    # 1. a clean change passes: both hooks run (installed from .pre-commit-hooks.yaml, offline)
    res = _commit(repo, "initial infrastructure")
    out = res.stdout + res.stderr
    assert res.returncode == 0, out
    assert "tfaudit config validate" in out and "tfaudit plan + analyze" in out and "Failed" not in out
    assert _head(repo) == "initial infrastructure"
    assert any(hook_venvs.glob("repo*/py_env-*/bin/tfaudit"))  # pre-commit built the hook's own virtualenv
    assert (infra / "live" / ".terraform").is_dir()  # the hook initialized the root module it planned
    assert not (infra / "modules" / "net" / ".terraform").exists()  # and only the root
    res = subprocess.run(["terraform", "apply", "-auto-approve", "-input=false"], cwd=infra / "live",
                         env=repo["env"], capture_output=True, text=True, timeout=300)  # state to plan against
    assert res.returncode == 0, res.stdout + res.stderr

    # 2. a commit whose plan deletes a terraform_data: the deny rule blocks it
    main = infra / "live" / "main.tf"
    main.write_text(main.read_text().replace('"db"', '"database"'))
    res = _commit(repo, "rename the database")
    out = res.stdout + res.stderr
    assert res.returncode != 0, out
    assert "tfaudit plan + analyze" in out and "Failed" in out
    assert "denied by rule no-data-delete" in out and "terraform_data.db" in out
    assert _head(repo) == "initial infrastructure"

    # 3. a change in the child module plans its root module (live) once, and an update passes
    main.write_text(main.read_text().replace('"database"', '"db"'))
    (infra / "modules" / "net" / "main.tf").write_text(
        'resource "terraform_data" "net" {\n  input = "10.1.0.0/16"\n}\n')
    res = _commit(repo, "widen the network")
    out = res.stdout + res.stderr
    assert res.returncode == 0, out
    assert _head(repo) == "widen the network"

    # 4. a broken .tfaudit.hcl is blocked by tfaudit-config (and by the plan hook, which needs its rules)
    (infra / "live" / ".tfaudit.hcl").write_text(DENY_RULE + "\nbogus_setting = 1\n")
    res = _commit(repo, "broken config")
    out = res.stdout + res.stderr
    assert res.returncode != 0 and "unknown block or setting 'bogus_setting'" in out
    assert _head(repo) == "widen the network"
    (infra / "live" / ".tfaudit.hcl").write_text(DENY_RULE)

    # 5. a plan that fails (an undeclared variable) blocks the commit too
    main.write_text(main.read_text() + 'resource "terraform_data" "oops" {\n  input = var.missing\n}\n')
    res = _commit(repo, "broken plan")
    out = res.stdout + res.stderr
    assert res.returncode != 0 and "plan failed" in out and "Reference to undeclared input variable" in out
    assert _head(repo) == "widen the network"


def test_hooks_manifest_follows_pre_commit_schema() -> None:
    from pre_commit.clientlib import load_manifest

    hooks = {h["id"]: h for h in load_manifest(str(ROOT / ".pre-commit-hooks.yaml"))}
    assert set(hooks) == {"tfaudit-config", "tfaudit-plan"}
    plan = hooks["tfaudit-plan"]
    assert plan["require_serial"] is True and plan["pass_filenames"] is True and plan["language"] == "python"
    import re

    files = re.compile(plan["files"])
    exclude = re.compile(plan["exclude"])
    for name in ("main.tf", "a/b/x.tofu", "prod.tfvars", "terragrunt.hcl", ".terraform.lock.hcl"):
        assert files.search(name) and not exclude.search(name), name
    assert exclude.search("live/.terraform/modules/x/main.tf")
    assert not files.search("README.md")
    assert re.compile(hooks["tfaudit-config"]["files"]).search("live/.tfaudit.hcl")
    assert not re.compile(hooks["tfaudit-config"]["files"]).search("live/x.tfaudit.hcl.bak")
