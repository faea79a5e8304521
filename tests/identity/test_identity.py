"""Identity: CI providers from their documented variables, real git in a temp dir.

Every call passes an explicit env: the suite itself runs under CI=true.
"""

from __future__ import annotations

import json
import os
from dataclasses import fields
from pathlib import Path
from typing import Any

import pytest

from tfaudit.terraform import proc as _proc
from tfaudit.identity import actor as identity
from tfaudit.identity.actor import IdentityOptions, collect_actor, detect_ci, git_identity

SENTINEL = "s3cr3t-do-not-record"

# Values shaped like each provider's documentation examples.
GITHUB = {
    "CI": "true",
    "GITHUB_ACTIONS": "true",
    "GITHUB_RUN_ID": "1658821493",
    "GITHUB_RUN_ATTEMPT": "3",
    "GITHUB_SERVER_URL": "https://github.com",
    "GITHUB_REPOSITORY": "octocat/Hello-World",
    "GITHUB_ACTOR": "octocat",
    "GITHUB_TRIGGERING_ACTOR": "hubot",
    "GITHUB_WORKFLOW": "terraform",
    "GITHUB_JOB": "apply",
    "GITHUB_REF": "refs/pull/42/merge",
    "GITHUB_HEAD_REF": "feature-branch-1",
    "GITHUB_BASE_REF": "main",
    "GITHUB_SHA": "ffac537e6cbbf934b08745a378932722df287a53",
    "GITHUB_EVENT_NAME": "pull_request",
}
GITLAB = {
    "CI": "true",
    "GITLAB_CI": "true",
    "CI_PIPELINE_ID": "1000",
    "CI_PIPELINE_URL": "https://gitlab.example.com/infra/live/-/pipelines/1000",
    "CI_JOB_NAME": "apply",
    "GITLAB_USER_LOGIN": "ada",
    "CI_PROJECT_PATH": "infra/live",
    "CI_COMMIT_SHA": "83a20ec058e2fb00e7fa4558c4c6e81e2dcf253d",
    "CI_COMMIT_REF_NAME": "add-vpc",
    "CI_MERGE_REQUEST_IID": "7",
    "CI_MERGE_REQUEST_REF_PATH": "refs/merge-requests/7/head",
    "CI_MERGE_REQUEST_SOURCE_BRANCH_NAME": "add-vpc",
    "CI_PIPELINE_SOURCE": "merge_request_event",
}
CIRCLECI = {
    "CI": "true",
    "CIRCLECI": "true",
    "CIRCLE_BUILD_NUM": "1234",
    "CIRCLE_BUILD_URL": "https://circleci.com/gh/acme/infra/1234",
    "CIRCLE_JOB": "apply",
    "CIRCLE_USERNAME": "grace",
    "CIRCLE_PROJECT_USERNAME": "acme",
    "CIRCLE_PROJECT_REPONAME": "infra",
    "CIRCLE_BRANCH": "main",
    "CIRCLE_SHA1": "83a20ec058e2fb00e7fa4558c4c6e81e2dcf253d",
    "CIRCLE_PULL_REQUEST": "https://github.com/acme/infra/pull/12",
    "CIRCLE_WORKFLOW_ID": "b8e2a5a4-0000-4a00-8000-000000000001",
}
JENKINS = {
    "CI": "true",
    "JENKINS_URL": "https://jenkins.example.com/",
    "JENKINS_HOME": "/var/jenkins_home",
    "BUILD_NUMBER": "153",
    "BUILD_ID": "153",
    "BUILD_URL": "https://jenkins.example.com/job/infra/job/main/153/",
    "JOB_NAME": "infra/main",
    "BUILD_USER_ID": "linus",
    "BRANCH_NAME": "main",
    "GIT_BRANCH": "origin/main",
    "GIT_COMMIT": "ce9a3c1404e8c91be604088670e93434c4253f03",
    "GIT_URL": f"https://jenkins-bot:{SENTINEL}@git.example.com/infra/live.git",
}
BUILDKITE = {
    "CI": "true",
    "BUILDKITE": "true",
    "BUILDKITE_BUILD_NUMBER": "1514",
    "BUILDKITE_BUILD_ID": "4735ba57-80d0-46e2-8fa0-b28223a86586",
    "BUILDKITE_BUILD_URL": "https://buildkite.com/acme-inc/my-project/builds/1514",
    "BUILDKITE_BUILD_CREATOR": "Carol Danvers",
    "BUILDKITE_PIPELINE_SLUG": "my-project",
    "BUILDKITE_LABEL": ":terraform: apply",
    "BUILDKITE_RETRY_COUNT": "0",
    "BUILDKITE_BRANCH": "main",
    "BUILDKITE_TAG": "",
    "BUILDKITE_COMMIT": "83a20ec058e2fb00e7fa4558c4c6e81e2dcf253d",
    "BUILDKITE_REPO": f"https://x-access-token:{SENTINEL}@github.com/acme-inc/my-project.git",
    "BUILDKITE_PULL_REQUEST": "false",
    "BUILDKITE_SOURCE": "webhook",
}
AZURE = {
    "TF_BUILD": "True",
    "BUILD_BUILDID": "1430",
    "BUILD_DEFINITIONNAME": "infra-apply",
    "SYSTEM_COLLECTIONURI": "https://dev.azure.com/fabrikamfiber/",
    "SYSTEM_TEAMPROJECT": "Fabrikam Fiber",
    "SYSTEM_JOBATTEMPT": "2",
    "SYSTEM_JOBDISPLAYNAME": "Apply",
    "BUILD_REQUESTEDFOR": "Jamal Hartnett",
    "BUILD_REQUESTEDFOREMAIL": "fabrikamfiber4@example.com",
    "BUILD_REPOSITORY_NAME": "infra",
    "BUILD_REPOSITORY_URI": "https://fabrikamfiber@dev.azure.com/fabrikamfiber/_git/infra",
    "BUILD_SOURCEBRANCH": "refs/heads/main",
    "BUILD_SOURCEVERSION": "5d7a52ce5a6e5f3cd1a8d1ee36fd6a1e6b3f1e0a",
    "BUILD_REASON": "IndividualCI",
}
BITBUCKET = {
    "CI": "true",
    "BITBUCKET_BUILD_NUMBER": "27",
    "BITBUCKET_PIPELINE_UUID": "{5e7c0d4a-0000-4000-8000-000000000027}",
    "BITBUCKET_STEP_UUID": "{9a1b2c3d-0000-4000-8000-000000000001}",
    "BITBUCKET_STEP_TRIGGERER_UUID": "{1f2e3d4c-0000-4000-8000-0000000000aa}",
    "BITBUCKET_REPO_FULL_NAME": "acme/infra",
    "BITBUCKET_WORKSPACE": "acme",
    "BITBUCKET_REPO_SLUG": "infra",
    "BITBUCKET_BRANCH": "feature/vpc",
    "BITBUCKET_COMMIT": "83a20ec058e2fb00e7fa4558c4c6e81e2dcf253d",
    "BITBUCKET_PR_ID": "9",
}
ATLANTIS = {
    "ATLANTIS_TERRAFORM_VERSION": "1.6.6",
    "WORKSPACE": "default",
    "DIR": "/home/atlantis/.atlantis/repos/runatlantis/atlantis/2/default/infra",
    "REPO_REL_DIR": "infra",
    "PROJECT_NAME": "",
    "BASE_REPO_OWNER": "runatlantis",
    "BASE_REPO_NAME": "atlantis",
    "HEAD_REPO_OWNER": "acme-corp",
    "HEAD_REPO_NAME": "atlantis",
    "HEAD_BRANCH_NAME": "add-vpc",
    "HEAD_COMMIT": "83a20ec058e2fb00e7fa4558c4c6e81e2dcf253d",
    "BASE_BRANCH_NAME": "main",
    "PULL_NUM": "2",
    "PULL_URL": "https://github.com/runatlantis/atlantis/pull/2",
    "PULL_AUTHOR": "acme-author",
    "USER_NAME": "acme-user",
}
# Secrets each provider (or its users) put in the environment; none may be recorded.
SECRETS = {
    "GITHUB_TOKEN": SENTINEL,
    "ACTIONS_ID_TOKEN_REQUEST_TOKEN": SENTINEL,
    "CI_JOB_TOKEN": SENTINEL,
    "CI_REGISTRY_PASSWORD": SENTINEL,
    "CI_REPOSITORY_URL": f"https://gitlab-ci-token:{SENTINEL}@gitlab.example.com/infra/live.git",
    "CIRCLE_OIDC_TOKEN": SENTINEL,
    "BUILDKITE_AGENT_ACCESS_TOKEN": SENTINEL,
    "SYSTEM_ACCESSTOKEN": SENTINEL,
    "ATLANTIS_GH_TOKEN": SENTINEL,
    "AWS_SECRET_ACCESS_KEY": SENTINEL,
    "TF_VAR_db_password": SENTINEL,
}

CASES: list[tuple[str, dict[str, str], dict[str, Any]]] = [
    ("github_actions", GITHUB, {
        "run_id": "1658821493",
        "url": "https://github.com/octocat/Hello-World/actions/runs/1658821493",
        "triggered_by": "hubot", "run_attempt": 3, "pull_request": 42,
        "branch": "feature-branch-1", "event": "pull_request", "pipeline": "terraform",
    }),
    ("gitlab_ci", GITLAB, {
        "run_id": "1000", "url": "https://gitlab.example.com/infra/live/-/pipelines/1000",
        "triggered_by": "ada", "pull_request": 7, "branch": "add-vpc",
        "ref": "refs/merge-requests/7/head", "event": "merge_request_event",
    }),
    ("circleci", CIRCLECI, {
        "run_id": "1234", "url": "https://circleci.com/gh/acme/infra/1234",
        "triggered_by": "grace", "pull_request": 12, "repository": "acme/infra",
    }),
    ("jenkins", JENKINS, {
        "run_id": "153", "url": "https://jenkins.example.com/job/infra/job/main/153/",
        "triggered_by": "linus", "pipeline": "infra/main", "branch": "main",
        "repository": "https://git.example.com/infra/live.git",
    }),
    ("buildkite", BUILDKITE, {
        "run_id": "1514", "url": "https://buildkite.com/acme-inc/my-project/builds/1514",
        "triggered_by": "Carol Danvers", "run_attempt": 1, "pull_request": None,
        "repository": "https://github.com/acme-inc/my-project.git", "ref": "refs/heads/main",
    }),
    ("azure_pipelines", AZURE, {
        "run_id": "1430",
        "url": "https://dev.azure.com/fabrikamfiber/Fabrikam%20Fiber/_build/results?buildId=1430",
        "triggered_by": "fabrikamfiber4@example.com", "run_attempt": 2, "branch": "main",
    }),
    ("bitbucket_pipelines", BITBUCKET, {
        "run_id": "27", "url": "https://bitbucket.org/acme/infra/pipelines/results/27",
        "triggered_by": "{1f2e3d4c-0000-4000-8000-0000000000aa}", "pull_request": 9,
        "branch": "feature/vpc",
    }),
    ("atlantis", ATLANTIS, {
        "run_id": None, "url": "https://github.com/runatlantis/atlantis/pull/2",
        "triggered_by": "acme-user", "pull_request": 2, "repository": "runatlantis/atlantis",
        "pipeline": "infra", "job": "default", "branch": "add-vpc",
    }),
    ("generic", {"CI": "true"}, {"run_id": None, "url": None, "triggered_by": None}),
]


@pytest.mark.parametrize(("provider", "env", "expected"), CASES, ids=[c[0] for c in CASES])
def test_ci_provider_from_documented_env(provider: str, env: dict[str, str],
                                         expected: dict[str, Any]) -> None:
    ci = detect_ci(env)
    assert ci is not None
    assert set(ci) == {f.name for f in fields(identity.CIRun)}
    assert ci["provider"] == provider
    assert {k: ci[k] for k in expected} == expected


def test_no_ci() -> None:
    assert detect_ci({"PATH": "/usr/bin", "HOME": "/home/x"}) is None
    assert detect_ci({"CI": "false"}) is None
    # a workstation configured for jenkins-cli is not a Jenkins build
    assert detect_ci({"JENKINS_URL": "https://jenkins.example.com/"}) is None


def test_atlantis_inside_github_actions_is_atlantis() -> None:
    ci = detect_ci({**GITHUB, **ATLANTIS})
    assert ci is not None
    assert ci["provider"] == "atlantis"
    assert ci["triggered_by"] == "acme-user"


def test_ci_user_becomes_the_actor(tmp_path: Path) -> None:
    actor = collect_actor(cwd=tmp_path, env={**GITLAB, "USER": "runner"},
                          options=IdentityOptions(git=False))
    assert (actor["user"], actor["os_user"]) == ("ada", "runner")


@pytest.mark.parametrize(("provider", "env"), [(c[0], c[1]) for c in CASES], ids=[c[0] for c in CASES])
def test_no_secret_reaches_the_record(tmp_path: Path, provider: str, env: dict[str, str]) -> None:
    actor = collect_actor(cwd=tmp_path, env={**env, **SECRETS}, options=IdentityOptions(git=False))
    assert actor["ci"]["provider"] == provider
    assert SENTINEL not in json.dumps(actor)


def test_env_values_are_trimmed_capped_and_printable() -> None:
    ci = detect_ci({**GITHUB, "GITHUB_TRIGGERING_ACTOR": "  eve\n\x1b[31mINJECTED\u202e ",
                    "GITHUB_WORKFLOW": "w" * 10_000})
    assert ci is not None
    assert ci["triggered_by"] == "eve  [31mINJECTED"
    assert len(ci["pipeline"]) == identity.MAX_VALUE_LEN


def test_credentials_are_stripped_before_the_length_cap() -> None:
    # A cut inside the userinfo would otherwise leave a token prefix without its '@'.
    url = f"https://bot:{SENTINEL}{'x' * 600}@github.com/acme/infra.git"
    ci = detect_ci({**BUILDKITE, "BUILDKITE_REPO": url})
    assert ci is not None
    assert ci["repository"] == "https://github.com/acme/infra.git"


def test_scp_remote_user_is_kept_but_odd_names_are_not_mangled() -> None:
    ci = detect_ci({**BUILDKITE, "BUILDKITE_REPO": "git@github.com:acme-inc/my-project.git",
                    "BUILDKITE_BUILD_CREATOR": "Ada: the first@home"})
    assert ci is not None
    assert ci["repository"] == "git@github.com:acme-inc/my-project.git"
    assert ci["triggered_by"] == "Ada: the first@home"
    ci = detect_ci({**BUILDKITE, "BUILDKITE_REPO": f"bot:{SENTINEL}@github.com:acme/infra.git"})
    assert ci is not None
    assert ci["repository"] == "github.com:acme/infra.git"


def test_secret_query_parameters_are_dropped() -> None:
    url = f"https://gl.example.com/p/-/pipelines/1?private_token={SENTINEL}&tab=jobs"
    ci = detect_ci({**GITLAB, "CI_PIPELINE_URL": url})
    assert ci is not None
    assert ci["url"] == "https://gl.example.com/p/-/pipelines/1?tab=jobs"


# --- user ---------------------------------------------------------------------
def test_tfaudit_actor_wins(tmp_path: Path) -> None:
    actor = collect_actor(cwd=tmp_path, env={**GITHUB, "TFAUDIT_ACTOR": " deploy-bot ", "USER": "root"},
                          options=IdentityOptions(user="svc-terraform", git=False))
    assert actor["user"] == "deploy-bot"
    assert actor["ci"]["triggered_by"] == "hubot"


def test_config_override_beats_ci_user(tmp_path: Path) -> None:
    actor = collect_actor(cwd=tmp_path, env={**GITHUB, "TFAUDIT_ACTOR": "  "},
                          options=IdentityOptions(user="svc-terraform", git=False))
    assert actor["user"] == "svc-terraform"


def test_os_login_outside_ci(tmp_path: Path) -> None:
    actor = collect_actor(cwd=tmp_path, env={"LOGNAME": "alice", "USER": "bob"},
                          options=IdentityOptions(git=False))
    assert (actor["user"], actor["os_user"], actor["ci"]) == ("alice", "alice", None)


def test_user_is_never_empty(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    actor = collect_actor(cwd=tmp_path, env={}, options=IdentityOptions(git=False))
    assert actor["user"] and actor["user"] == actor["os_user"]

    monkeypatch.setattr(identity, "_passwd_login", lambda: None)  # a uid with no passwd entry
    actor = collect_actor(cwd=tmp_path, env={}, options=IdentityOptions(git=False, hostname=False))
    assert actor["user"] == f"uid:{os.getuid()}"
    assert actor["hostname"] is None


def test_all_keys_present_when_everything_is_off(tmp_path: Path) -> None:
    actor = collect_actor(cwd=tmp_path, env=GITHUB,
                          options=IdentityOptions(git=False, ci=False, hostname=False))
    assert set(actor) == {"user", "os_user", "hostname", "git", "ci"}
    assert (actor["git"], actor["ci"], actor["hostname"]) == (None, None, None)
    json.dumps(actor)


# --- git ----------------------------------------------------------------------
@pytest.fixture
def git_env(tmp_path: Path) -> dict[str, str]:
    home = tmp_path / "home"
    home.mkdir()
    return {
        "PATH": os.environ["PATH"],
        "HOME": str(home),  # no user-level git config leaks in
        "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_CEILING_DIRECTORIES": str(tmp_path),  # never find a repo above the test's dir
    }


def git(cwd: Path, env: dict[str, str], *args: str) -> str:
    res = _proc.run(["git", *args], cwd=cwd, env=env, timeout=10)
    assert res.ok, res.stderr_text()
    return res.stdout.decode().strip()


@pytest.fixture
def repo(tmp_path: Path, git_env: dict[str, str]) -> Path:
    path = tmp_path / "repo"
    path.mkdir()
    git(path, git_env, "init", "-q", "-b", "main")
    git(path, git_env, "config", "user.name", "Ada Lovelace")
    git(path, git_env, "config", "user.email", "ada@example.com")
    git(path, git_env, "config", "commit.gpgsign", "false")
    git(path, git_env, "remote", "add", "origin", "https://user:s3cr3t@example.com/org/repo.git")
    return path


def commit(repo: Path, env: dict[str, str]) -> str:
    (repo / "main.tf").write_text('resource "null_resource" "x" {}\n')
    git(repo, env, "add", "main.tf")
    git(repo, env, "commit", "-q", "-m", "init")
    return git(repo, env, "rev-parse", "HEAD")


def test_git_identity_of_a_real_repo(repo: Path, git_env: dict[str, str]) -> None:
    head = commit(repo, git_env)
    info = git_identity(repo / ".", git_env)
    assert info == {
        "user_name": "Ada Lovelace",
        "user_email": "ada@example.com",
        "commit": head,
        "branch": "main",
        "remote": "https://example.com/org/repo.git",
        "dirty": False,
        "toplevel": str(repo.resolve()),
    }
    actor = collect_actor(cwd=repo, env=git_env)
    assert "s3cr3t" not in json.dumps(actor)
    assert actor["git"]["commit"] == head

    (repo / "scratch.tfvars").write_text("x = 1\n")  # untracked counts
    assert dirty(repo, git_env) is True
    (repo / "scratch.tfvars").unlink()
    assert dirty(repo, git_env) is False
    (repo / "main.tf").write_text("# edited\n")
    assert dirty(repo, git_env) is True


def dirty(repo: Path, env: dict[str, str]) -> Any:
    info = git_identity(repo, env)
    assert info is not None
    return info["dirty"]


def test_git_identity_from_a_subdirectory(repo: Path, git_env: dict[str, str]) -> None:
    commit(repo, git_env)
    sub = repo / "modules" / "vpc"
    sub.mkdir(parents=True)
    info = git_identity(sub, git_env)
    assert info is not None
    assert info["toplevel"] == str(repo.resolve())


def test_repo_without_commits(repo: Path, git_env: dict[str, str]) -> None:
    info = git_identity(repo, git_env)
    assert info is not None
    assert (info["commit"], info["branch"], info["dirty"]) == (None, "main", False)


def test_detached_head_has_no_branch(repo: Path, git_env: dict[str, str]) -> None:
    commit(repo, git_env)
    git(repo, git_env, "checkout", "-q", "--detach")
    info = git_identity(repo, git_env)
    assert info is not None
    assert info["branch"] is None


def test_detached_head_in_ci_takes_the_ci_branch(repo: Path, git_env: dict[str, str]) -> None:
    commit(repo, git_env)
    git(repo, git_env, "checkout", "-q", "--detach")
    info = git_identity(repo, {**git_env, **GITHUB})
    assert info is not None
    assert info["branch"] == "feature-branch-1"


def test_outside_a_repo_git_is_null(tmp_path: Path, git_env: dict[str, str]) -> None:
    plain = tmp_path / "plain"
    plain.mkdir()
    assert git_identity(plain, git_env) is None
    assert collect_actor(cwd=plain, env=git_env)["git"] is None


def test_missing_cwd_is_null(tmp_path: Path, git_env: dict[str, str]) -> None:
    assert git_identity(tmp_path / "gone", git_env) is None


def test_git_not_on_path_is_null(repo: Path, git_env: dict[str, str], tmp_path: Path) -> None:
    empty = tmp_path / "empty-bin"
    empty.mkdir()
    env = {**git_env, "PATH": str(empty)}
    assert git_identity(repo, env) is None
    actor = collect_actor(cwd=repo, env=env)
    assert actor["git"] is None and actor["user"]
