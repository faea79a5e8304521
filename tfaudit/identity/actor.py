"""Who ran terraform: the OS login, the git checkout, and the CI run around it.

Everything is read from the ``env`` mapping the caller passes, never from
``os.environ``, so a record says what the wrapped terraform saw and tests are exact.
Environment values are untrusted: each one is trimmed, stripped of control
characters and URL credentials, and capped in length. Variables whose *names* look
like secrets (``*_TOKEN``, ``*SECRET*``, ``*PASSWORD*`` ...) are never read.

Collecting identity never fails a run: a missing or broken git gives nulls.
"""

from __future__ import annotations

import os
import re
import socket
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields
from enum import Enum
from pathlib import Path
from subprocess import SubprocessError  # exception type only; _proc starts the processes
from typing import Any
from urllib.parse import parse_qsl, quote, urlencode, urlsplit, urlunsplit

from tfaudit.terraform import proc as _proc

ACTOR_ENV = "TFAUDIT_ACTOR"
MAX_VALUE_LEN = 512
GIT_TIMEOUT_SECONDS = 5.0

_SECRET_NAME = re.compile(
    r"TOKEN|SECRET|PASSWORD|PASSWD|CREDENTIAL|PRIVATE_KEY|ACCESS_KEY|API_KEY", re.IGNORECASE
)
_SECRET_PARAM = re.compile(r"token|secret|passw|pwd|key|sig|auth|credential", re.IGNORECASE)
# C0/C1 controls plus bidi and zero-width marks, which can disguise a value when displayed.
_UNPRINTABLE = re.compile("[\x00-\x1f\x7f-\x9f\u200b-\u200f\u202a-\u202e\u2066-\u2069]")
# scp-style remotes (git@host:path) name a user, not a secret; only user:secret@ is scrubbed.
_SCP_USERINFO = re.compile(r"^[^@/:\s]+:[^@/\s]*@(?=[^@/:\s]+:)")
_PR_REF = re.compile(r"^refs/pull/(\d+)/")
_TRUE = frozenset({"true", "1", "yes"})


class CIProvider(str, Enum):
    ATLANTIS = "atlantis"
    GITHUB_ACTIONS = "github_actions"
    GITLAB_CI = "gitlab_ci"
    CIRCLECI = "circleci"
    BUILDKITE = "buildkite"
    AZURE_PIPELINES = "azure_pipelines"
    BITBUCKET_PIPELINES = "bitbucket_pipelines"
    JENKINS = "jenkins"
    GENERIC = "generic"


@dataclass(frozen=True)
class IdentityOptions:
    user: str | None = None  # an explicit override from config (e.g. for service accounts)
    git: bool = True
    ci: bool = True
    hostname: bool = True


@dataclass(frozen=True)
class CIRun:
    """One CI run as the provider describes it; unknown fields stay None.

    ``run_id`` identifies what ``url`` links to. ``ref`` is a full git ref
    (``refs/heads/...``, ``refs/tags/...`` or the provider's PR ref); ``branch`` is
    the source branch name. ``event`` is the provider's own trigger name, unmapped.
    """

    provider: CIProvider
    pipeline: str | None = None
    run_id: str | None = None
    run_attempt: int | None = None
    job: str | None = None
    url: str | None = None
    triggered_by: str | None = None
    repository: str | None = None
    ref: str | None = None
    branch: str | None = None
    commit: str | None = None
    event: str | None = None
    pull_request: int | None = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {f.name: getattr(self, f.name) for f in fields(self)}
        out["provider"] = self.provider.value
        return out


def collect_actor(
    *, cwd: Path, env: Mapping[str, str], options: IdentityOptions | None = None
) -> dict[str, Any]:
    """The ``actor`` block of a record; every key is present, null where unknown."""
    opts = options or IdentityOptions()
    reader = _EnvReader(env)
    ci = detect_ci(env) if opts.ci else None
    os_user = _os_login(reader)
    user = (
        reader.get(ACTOR_ENV)
        or _clean(opts.user)
        or (ci["triggered_by"] if ci else None)
        or os_user
    )
    return {
        "user": user,
        "os_user": os_user,
        "hostname": _hostname() if opts.hostname else None,
        "git": git_identity(cwd, env) if opts.git else None,
        "ci": ci,
    }


def detect_ci(env: Mapping[str, str]) -> dict[str, Any] | None:
    """The CI run this process is part of, or None outside CI."""
    reader = _EnvReader(env)
    for provider in _PROVIDERS.values():
        if provider.detect(reader):
            return provider.read(reader).to_dict()
    if reader.flag("CI"):
        return CIRun(CIProvider.GENERIC).to_dict()
    return None


def git_identity(cwd: Path, env: Mapping[str, str]) -> dict[str, Any] | None:
    """The git work tree around ``cwd``, or None outside one (or without a working git)."""
    git_env = {**env, "GIT_TERMINAL_PROMPT": "0", "GIT_OPTIONAL_LOCKS": "0"}

    def git(*args: str) -> str | None:
        try:
            res = _proc.run(["git", *args], cwd=cwd, env=git_env, timeout=GIT_TIMEOUT_SECONDS)
        except (OSError, ValueError, SubprocessError):
            return None
        return res.stdout.decode("utf-8", "replace").strip() if res.ok else None

    toplevel = git("rev-parse", "--show-toplevel")
    if not toplevel:
        return None
    remote = git("remote", "get-url", "origin")
    # fsmonitor off: a repo's config must not make `status` run a program.
    status = git("-c", "core.fsmonitor=false", "status", "--porcelain", "--untracked-files=normal")
    branch = _clean(git("symbolic-ref", "--quiet", "--short", "HEAD"))
    if branch is None:
        # CI checkouts are usually detached; the provider still knows the branch.
        ci = detect_ci(env)
        branch = ci["branch"] if ci else None
    return {
        "user_name": _clean(git("config", "--get", "user.name")),
        "user_email": _clean(git("config", "--get", "user.email")),
        "commit": _clean(git("rev-parse", "--verify", "--quiet", "HEAD")),
        "branch": branch,
        "remote": _clean(remote),
        "dirty": None if status is None else status != "",
        "toplevel": _clean(toplevel),
    }


# --- untrusted values ---------------------------------------------------------
def _clean(value: str | None) -> str | None:
    """Printable, credential-free, at most MAX_VALUE_LEN characters; None when empty."""
    if value is None:
        return None
    text = _UNPRINTABLE.sub(" ", value).strip()
    # Strip credentials before capping, so a cut cannot hide the '@' that ends them.
    text = _strip_credentials(text) or ""
    return text[:MAX_VALUE_LEN].strip() or None


def _strip_credentials(text: str) -> str | None:
    """Drop ``user:secret@`` and secret-looking query parameters from URLs; None if unparseable."""
    if "://" not in text:
        return _SCP_USERINFO.sub("", text, count=1)
    try:
        parts = urlsplit(text)
    except ValueError:
        return None
    query = parts.query
    pairs = parse_qsl(query, keep_blank_values=True)
    if any(_SECRET_PARAM.search(k) for k, _ in pairs):
        query = urlencode([(k, v) for k, v in pairs if not _SECRET_PARAM.search(k)])
    return urlunsplit((parts.scheme, parts.netloc.rpartition("@")[2], parts.path, query, ""))


class _EnvReader:
    def __init__(self, env: Mapping[str, str]) -> None:
        self._env = env

    def get(self, *names: str) -> str | None:
        """The first of ``names`` that is set to something non-blank, cleaned."""
        for name in names:
            if _SECRET_NAME.search(name):
                raise ValueError(f"refusing to read {name}: the name looks like a secret")
            value = _clean(self._env.get(name))
            if value is not None:
                return value
        return None

    def flag(self, name: str) -> bool:
        return (self.get(name) or "").lower() in _TRUE

    def number(self, *names: str) -> int | None:
        value = self.get(*names)
        return int(value) if value is not None and value.isascii() and value.isdigit() else None


def _os_login(env: _EnvReader) -> str:
    # getpass.getuser()'s order, but reading the env we were given rather than os.environ.
    return env.get("LOGNAME", "USER", "LNAME", "USERNAME") or _passwd_login() or _uid_login()


def _passwd_login() -> str | None:
    try:
        import pwd

        return _clean(pwd.getpwuid(os.getuid()).pw_name)
    except (ImportError, KeyError, OSError):
        return None


def _uid_login() -> str:
    getuid: Callable[[], int] | None = getattr(os, "getuid", None)
    return f"uid:{getuid()}" if getuid is not None else "unknown"


def _hostname() -> str | None:
    try:
        return _clean(socket.gethostname())
    except OSError:
        return None


# --- CI providers -------------------------------------------------------------
# Each reads only the variables its provider documents.
def _heads(branch: str | None) -> str | None:
    return f"refs/heads/{branch}" if branch else None


def _ref(*, branch: str | None, tag: str | None) -> str | None:
    return f"refs/tags/{tag}" if tag else _heads(branch)


def _branch_of(ref: str | None) -> str | None:
    return ref.removeprefix("refs/heads/") if ref and ref.startswith("refs/heads/") else None


def _pr_number(text: str | None) -> int | None:
    """The number at the end of a PR URL such as https://github.com/o/r/pull/12."""
    tail = (text or "").rstrip("/").rpartition("/")[2]
    return int(tail) if tail.isascii() and tail.isdigit() else None


def _atlantis(e: _EnvReader) -> CIRun:
    # https://www.runatlantis.io/docs/custom-workflows (run step environment variables)
    owner, name = e.get("BASE_REPO_OWNER"), e.get("BASE_REPO_NAME")
    branch = e.get("HEAD_BRANCH_NAME")
    return CIRun(
        CIProvider.ATLANTIS,
        pipeline=e.get("PROJECT_NAME", "REPO_REL_DIR"),
        job=e.get("WORKSPACE"),  # the terraform workspace this step runs in
        url=e.get("PULL_URL"),
        triggered_by=e.get("USER_NAME"),  # the VCS user who commented; the bot on autoplan
        repository=f"{owner}/{name}" if owner and name else None,
        ref=_heads(branch),
        branch=branch,
        commit=e.get("HEAD_COMMIT"),
        pull_request=e.number("PULL_NUM"),
    )


def _github(e: _EnvReader) -> CIRun:
    # https://docs.github.com/actions/reference/workflows-and-actions/variables
    server, repo, run_id = e.get("GITHUB_SERVER_URL"), e.get("GITHUB_REPOSITORY"), e.get("GITHUB_RUN_ID")
    ref = e.get("GITHUB_REF")
    pr = _PR_REF.match(ref or "")
    return CIRun(
        CIProvider.GITHUB_ACTIONS,
        pipeline=e.get("GITHUB_WORKFLOW"),
        run_id=run_id,
        run_attempt=e.number("GITHUB_RUN_ATTEMPT"),
        job=e.get("GITHUB_JOB"),
        url=f"{server.rstrip('/')}/{repo}/actions/runs/{run_id}" if server and repo and run_id else None,
        # The triggering actor differs from GITHUB_ACTOR on re-runs: it is who clicked re-run.
        triggered_by=e.get("GITHUB_TRIGGERING_ACTOR", "GITHUB_ACTOR"),
        repository=repo,
        ref=ref,
        branch=e.get("GITHUB_HEAD_REF") or _branch_of(ref),
        commit=e.get("GITHUB_SHA"),
        event=e.get("GITHUB_EVENT_NAME"),
        pull_request=int(pr.group(1)) if pr else None,
    )


def _gitlab(e: _EnvReader) -> CIRun:
    # https://docs.gitlab.com/ci/variables/predefined_variables/
    # CI_REPOSITORY_URL embeds the job token and is deliberately not read.
    branch = e.get(
        "CI_COMMIT_BRANCH",
        "CI_MERGE_REQUEST_SOURCE_BRANCH_NAME",
        "CI_EXTERNAL_PULL_REQUEST_SOURCE_BRANCH_NAME",
    )
    return CIRun(
        CIProvider.GITLAB_CI,
        pipeline=e.get("CI_PIPELINE_NAME"),
        run_id=e.get("CI_PIPELINE_ID"),
        job=e.get("CI_JOB_NAME"),
        url=e.get("CI_PIPELINE_URL"),
        triggered_by=e.get("GITLAB_USER_LOGIN"),
        repository=e.get("CI_PROJECT_PATH"),
        ref=e.get("CI_MERGE_REQUEST_REF_PATH")
        or _ref(branch=e.get("CI_COMMIT_BRANCH"), tag=e.get("CI_COMMIT_TAG")),
        branch=branch,
        commit=e.get("CI_COMMIT_SHA"),
        event=e.get("CI_PIPELINE_SOURCE"),
        pull_request=e.number("CI_MERGE_REQUEST_IID", "CI_EXTERNAL_PULL_REQUEST_IID"),
    )


def _circleci(e: _EnvReader) -> CIRun:
    # https://circleci.com/docs/reference/variables/ (built-in environment variables)
    owner, name = e.get("CIRCLE_PROJECT_USERNAME"), e.get("CIRCLE_PROJECT_REPONAME")
    branch = e.get("CIRCLE_BRANCH")
    return CIRun(
        CIProvider.CIRCLECI,
        run_id=e.get("CIRCLE_BUILD_NUM"),
        job=e.get("CIRCLE_JOB"),
        url=e.get("CIRCLE_BUILD_URL"),
        triggered_by=e.get("CIRCLE_USERNAME"),
        repository=f"{owner}/{name}" if owner and name else None,
        ref=_ref(branch=branch, tag=e.get("CIRCLE_TAG")),
        branch=branch,
        commit=e.get("CIRCLE_SHA1"),
        pull_request=e.number("CIRCLE_PR_NUMBER") or _pr_number(e.get("CIRCLE_PULL_REQUEST")),
    )


def _buildkite(e: _EnvReader) -> CIRun:
    # https://buildkite.com/docs/pipelines/environment_variables
    tag = e.get("BUILDKITE_TAG")
    # On a tag push BUILDKITE_BRANCH holds the tag name, not a branch.
    branch = None if tag else e.get("BUILDKITE_BRANCH")
    retries = e.number("BUILDKITE_RETRY_COUNT")
    pr = e.get("BUILDKITE_PULL_REQUEST")
    return CIRun(
        CIProvider.BUILDKITE,
        pipeline=e.get("BUILDKITE_PIPELINE_SLUG"),
        run_id=e.get("BUILDKITE_BUILD_NUMBER"),
        run_attempt=None if retries is None else retries + 1,
        job=e.get("BUILDKITE_LABEL"),
        url=e.get("BUILDKITE_BUILD_URL"),
        # Whoever unblocked the step is an authenticated Buildkite user; the creator of a
        # webhook build is taken from the (unverified) head commit.
        triggered_by=e.get("BUILDKITE_UNBLOCKER", "BUILDKITE_BUILD_CREATOR"),
        repository=e.get("BUILDKITE_REPO"),
        ref=_ref(branch=branch, tag=tag),
        branch=branch,
        commit=e.get("BUILDKITE_COMMIT"),
        event=e.get("BUILDKITE_SOURCE"),
        pull_request=_pr_number(pr) if pr != "false" else None,
    )


def _azure(e: _EnvReader) -> CIRun:
    # https://learn.microsoft.com/azure/devops/pipelines/build/variables
    collection = e.get("SYSTEM_COLLECTIONURI", "SYSTEM_TEAMFOUNDATIONCOLLECTIONURI")
    project, build_id = e.get("SYSTEM_TEAMPROJECT"), e.get("BUILD_BUILDID")
    ref = e.get("BUILD_SOURCEBRANCH")
    url = None
    if collection and project and build_id:
        url = (f"{collection.rstrip('/')}/{quote(project, safe='')}"
               f"/_build/results?buildId={quote(build_id, safe='')}")
    return CIRun(
        CIProvider.AZURE_PIPELINES,
        pipeline=e.get("BUILD_DEFINITIONNAME"),
        run_id=build_id,
        run_attempt=e.number("SYSTEM_JOBATTEMPT"),
        job=e.get("SYSTEM_JOBDISPLAYNAME", "SYSTEM_JOBNAME"),
        url=url,
        # The email is unique; Build.RequestedFor is a display name.
        triggered_by=e.get("BUILD_REQUESTEDFOREMAIL", "BUILD_REQUESTEDFOR"),
        repository=e.get("BUILD_REPOSITORY_NAME"),
        ref=ref,
        branch=_branch_of(e.get("SYSTEM_PULLREQUEST_SOURCEBRANCH")) or _branch_of(ref),
        commit=e.get("BUILD_SOURCEVERSION"),
        event=e.get("BUILD_REASON"),
        pull_request=e.number("SYSTEM_PULLREQUEST_PULLREQUESTNUMBER", "SYSTEM_PULLREQUEST_PULLREQUESTID"),
    )


def _bitbucket(e: _EnvReader) -> CIRun:
    # https://support.atlassian.com/bitbucket-cloud/docs/variables-and-secrets/
    repo, number = e.get("BITBUCKET_REPO_FULL_NAME"), e.get("BITBUCKET_BUILD_NUMBER")
    branch = e.get("BITBUCKET_BRANCH")
    return CIRun(
        CIProvider.BITBUCKET_PIPELINES,
        run_id=number,
        job=e.get("BITBUCKET_STEP_UUID"),
        url=f"https://bitbucket.org/{repo}/pipelines/results/{number}" if repo and number else None,
        triggered_by=e.get("BITBUCKET_STEP_TRIGGERER_UUID"),  # Bitbucket exposes no user name
        repository=repo,
        ref=_ref(branch=branch, tag=e.get("BITBUCKET_TAG")),
        branch=branch,
        commit=e.get("BITBUCKET_COMMIT"),
        pull_request=e.number("BITBUCKET_PR_ID"),
    )


def _jenkins(e: _EnvReader) -> CIRun:
    # ${JENKINS_URL}env-vars.html; GIT_* come from the git plugin and BUILD_USER_ID from
    # the build-user-vars plugin, so either may be missing.
    tag = e.get("TAG_NAME")
    git_branch = e.get("GIT_BRANCH")
    branch = None if tag else (
        e.get("CHANGE_BRANCH", "BRANCH_NAME", "GIT_LOCAL_BRANCH")
        or (git_branch.removeprefix("origin/") if git_branch else None)
    )
    return CIRun(
        CIProvider.JENKINS,
        pipeline=e.get("JOB_NAME"),
        run_id=e.get("BUILD_NUMBER"),
        url=e.get("BUILD_URL"),
        triggered_by=e.get("BUILD_USER_ID", "CHANGE_AUTHOR"),
        repository=e.get("GIT_URL"),
        ref=_ref(branch=branch, tag=tag),
        branch=branch,
        commit=e.get("GIT_COMMIT"),
        pull_request=e.number("CHANGE_ID"),
    )


@dataclass(frozen=True)
class _Provider:
    detect: Callable[[_EnvReader], bool]
    read: Callable[[_EnvReader], CIRun]


# Checked in this order; the first match wins. Atlantis runs its workflow steps inside
# whatever hosts it (often another CI system), so it must come first.
_PROVIDERS: dict[CIProvider, _Provider] = {
    CIProvider.ATLANTIS: _Provider(
        # WORKSPACE, DIR and USER_NAME are too generic to detect on.
        lambda e: e.get("ATLANTIS_TERRAFORM_VERSION") is not None
        and e.get("PULL_NUM", "BASE_REPO_NAME") is not None,
        _atlantis,
    ),
    CIProvider.GITHUB_ACTIONS: _Provider(lambda e: e.flag("GITHUB_ACTIONS"), _github),
    CIProvider.GITLAB_CI: _Provider(lambda e: e.flag("GITLAB_CI"), _gitlab),
    CIProvider.CIRCLECI: _Provider(lambda e: e.flag("CIRCLECI"), _circleci),
    CIProvider.BUILDKITE: _Provider(lambda e: e.flag("BUILDKITE"), _buildkite),
    CIProvider.AZURE_PIPELINES: _Provider(lambda e: e.flag("TF_BUILD"), _azure),
    CIProvider.BITBUCKET_PIPELINES: _Provider(
        lambda e: e.get("BITBUCKET_BUILD_NUMBER", "BITBUCKET_PIPELINE_UUID") is not None, _bitbucket
    ),
    CIProvider.JENKINS: _Provider(
        # JENKINS_URL alone may be a laptop set up for jenkins-cli; a build has a number.
        lambda e: e.get("BUILD_NUMBER") is not None and e.get("JENKINS_URL", "JENKINS_HOME") is not None,
        _jenkins,
    ),
}
