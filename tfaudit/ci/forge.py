"""The pull and merge request APIs tfaudit comments through: GitHub's issue comments and labels,
GitLab's merge request notes and labels.

Each forge is a small class behind the `Forge` Protocol, chosen from the `FORGES` registry.
Everything comes from the CI's documented environment: the API base URL (`GITHUB_API_URL`,
`CI_API_V4_URL`, so tests point them at a local server), the repository or project, the
request number, and the token (`GITHUB_TOKEN`; `GITLAB_TOKEN`, else `CI_JOB_TOKEN`). The token
goes in a header only, is taught to the redactor, and never appears in an error.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Protocol
from urllib.parse import quote

from tfaudit import __version__
from tfaudit.errors import ForgeError, UsageError
from tfaudit.redact import Redactor

PAGE_SIZE = 100
MAX_PAGES = 50
TIMEOUT = 20.0


@dataclass(frozen=True)
class Comment:
    id: int
    body: str


class ForgeName(StrEnum):
    GITHUB = "github"
    GITLAB = "gitlab"


class Forge(Protocol):
    """One pull or merge request's conversation."""

    @property
    def where(self) -> str: ...

    def comments(self) -> list[Comment]: ...

    def create(self, body: str) -> Comment: ...

    def update(self, comment_id: int, body: str) -> None: ...

    def set_labels(self, add: Sequence[str], remove: Sequence[str]) -> None: ...


class _Api:
    """JSON over HTTPS (plain http only to loopback, where the tests' server lives)."""

    def __init__(self, base: str, headers: Mapping[str, str], redactor: Redactor, what: str) -> None:
        from tfaudit.sinks._http import check_url

        problem = check_url(base, allow_http=False)
        if problem:
            raise UsageError(f"{what} API URL {base!r} {problem}", hint="use the CI's own API URL")
        self.base = base.rstrip("/")
        self.headers = {"User-Agent": f"tfaudit/{__version__}", "Accept": "application/json", **headers}
        self.redactor = redactor
        self.what = what

    def call(self, method: str, path: str, body: Any = None, ok_missing: bool = False) -> Any:
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.base + path, data=data, method=method,
                                     headers={**self.headers, **({"Content-Type": "application/json"} if data else {})})
        try:
            with urllib.request.urlopen(req, timeout=TIMEOUT) as resp:  # noqa: S310 - URL checked above
                raw = resp.read()
        except urllib.error.HTTPError as e:
            detail = e.read(300).decode("utf-8", "replace").strip() if e.fp else ""
            e.close()
            if ok_missing and e.code == 404:
                return None
            raise ForgeError(self.redactor.scrub(f"{self.what} API {method} {path}: HTTP {e.code}"
                                                 + (f": {detail[:200]}" if detail else "")),
                             status=e.code, hint=_hint(e.code)) from None
        except (urllib.error.URLError, OSError) as e:
            reason = getattr(e, "reason", e)
            raise ForgeError(self.redactor.scrub(f"{self.what} API {self.base}: cannot connect: {reason}"),
                             hint="check the API URL and the network") from None
        return json.loads(raw) if raw.strip() else None

    def pages(self, path: str) -> list[Any]:
        out: list[Any] = []
        sep = "&" if "?" in path else "?"
        for page in range(1, MAX_PAGES + 1):
            got = self.call("GET", f"{path}{sep}per_page={PAGE_SIZE}&page={page}")
            if not isinstance(got, list):
                break
            out += got
            if len(got) < PAGE_SIZE:
                break
        return out


def _hint(status: int) -> str:
    if status in (401, 403):
        return ("the token may not comment: give the job 'pull-requests: write' (GitHub) or set GITLAB_TOKEN "
                "to a project access token with the api scope (GitLab)")
    if status == 404:
        return "check the repository or project and the request number"
    return "see the API's answer above"


def _comment(obj: Any) -> Comment:
    if not isinstance(obj, Mapping) or not isinstance(obj.get("id"), int):
        raise ForgeError("the API answered with something that is not a comment")
    return Comment(int(obj["id"]), str(obj.get("body") or ""))


class GitHub:
    """Issue comments and labels of one pull request (`/repos/{owner}/{repo}/issues/{number}/...`)."""

    def __init__(self, api: _Api, repository: str, number: int) -> None:
        self.api, self.repo, self.number = api, repository, number

    @property
    def where(self) -> str:
        return f"{self.repo}#{self.number}"

    def _issue(self) -> str:
        return f"/repos/{self.repo}/issues/{self.number}"

    def comments(self) -> list[Comment]:
        return [_comment(c) for c in self.api.pages(self._issue() + "/comments")]

    def create(self, body: str) -> Comment:
        return _comment(self.api.call("POST", self._issue() + "/comments", {"body": body}))

    def update(self, comment_id: int, body: str) -> None:
        self.api.call("PATCH", f"/repos/{self.repo}/issues/comments/{comment_id}", {"body": body})

    def set_labels(self, add: Sequence[str], remove: Sequence[str]) -> None:
        present = {str(lb.get("name")) for lb in self.api.pages(self._issue() + "/labels") if isinstance(lb, Mapping)}
        for name in remove:
            if name in present:
                self.api.call("DELETE", f"{self._issue()}/labels/{quote(name, safe='')}", ok_missing=True)
        if [a for a in add if a not in present]:
            self.api.call("POST", self._issue() + "/labels", {"labels": list(add)})


class GitLab:
    """Notes and labels of one merge request (`/projects/{id}/merge_requests/{iid}/...`)."""

    def __init__(self, api: _Api, project: str, iid: int) -> None:
        self.api, self.project, self.iid = api, quote(project, safe=""), iid
        self.name = project

    @property
    def where(self) -> str:
        return f"{self.name}!{self.iid}"

    def _mr(self) -> str:
        return f"/projects/{self.project}/merge_requests/{self.iid}"

    def comments(self) -> list[Comment]:
        return [_comment(n) for n in self.api.pages(self._mr() + "/notes?sort=asc&order_by=created_at")
                if isinstance(n, Mapping) and not n.get("system")]

    def create(self, body: str) -> Comment:
        return _comment(self.api.call("POST", self._mr() + "/notes", {"body": body}))

    def update(self, comment_id: int, body: str) -> None:
        self.api.call("PUT", f"{self._mr()}/notes/{comment_id}", {"body": body})

    def set_labels(self, add: Sequence[str], remove: Sequence[str]) -> None:
        self.api.call("PUT", self._mr(), {"add_labels": ",".join(add), "remove_labels": ",".join(remove)})


def _need(env: Mapping[str, str], name: str, hint: str) -> str:
    value = env.get(name, "").strip()
    if not value:
        raise UsageError(f"{name} is not set", hint=hint)
    return value


def _number(text: str, what: str) -> int:
    try:
        n = int(text)
    except ValueError:
        raise UsageError(f"{what} {text!r} is not a number") from None
    if n <= 0:
        raise UsageError(f"{what} {text!r} is not a request number")
    return n


def _github_pr(api: _Api, repo: str, env: Mapping[str, str]) -> int | None:
    """The pull request of this event, else the one the pushed commit belongs to (apply after merge)."""
    event_path = env.get("GITHUB_EVENT_PATH")
    if event_path:
        try:
            with open(event_path, encoding="utf-8") as f:
                event = json.load(f)
        except (OSError, ValueError):
            event = {}
        for key in ("pull_request", "issue"):
            number = (event.get(key) or {}).get("number") if isinstance(event, Mapping) else None
            if isinstance(number, int):
                return number
    sha = env.get("GITHUB_SHA")
    if not sha:
        return None
    pulls = api.call("GET", f"/repos/{repo}/commits/{sha}/pulls", ok_missing=True) or []
    numbers = [p["number"] for p in pulls if isinstance(p, Mapping) and isinstance(p.get("number"), int)]
    return numbers[0] if numbers else None


def github(env: Mapping[str, str], redactor: Redactor, number: int | None) -> Forge | None:
    token = _need(env, "GITHUB_TOKEN", "pass the job's token: env GITHUB_TOKEN: ${{ github.token }}")
    redactor.learn(token)
    repo = _need(env, "GITHUB_REPOSITORY", "set it to OWNER/REPO (GitHub Actions sets it)")
    api = _Api(env.get("GITHUB_API_URL") or "https://api.github.com",
               {"Authorization": f"Bearer {token}", "X-GitHub-Api-Version": "2022-11-28"}, redactor, "GitHub")
    n = number or _github_pr(api, repo, env)
    return GitHub(api, repo, n) if n else None


def gitlab(env: Mapping[str, str], redactor: Redactor, number: int | None) -> Forge | None:
    if env.get("GITLAB_TOKEN"):
        token, header = env["GITLAB_TOKEN"], "PRIVATE-TOKEN"
    else:
        token = _need(env, "CI_JOB_TOKEN", "set GITLAB_TOKEN to a project access token with the api scope")
        header = "JOB-TOKEN"
    redactor.learn(token)
    project = env.get("CI_PROJECT_ID") or _need(env, "CI_PROJECT_PATH", "GitLab CI sets CI_PROJECT_ID")
    api = _Api(_need(env, "CI_API_V4_URL", "GitLab CI sets it, e.g. https://gitlab.com/api/v4"),
               {header: token}, redactor, "GitLab")
    iid = number or (_number(env["CI_MERGE_REQUEST_IID"], "CI_MERGE_REQUEST_IID") if env.get("CI_MERGE_REQUEST_IID") else None)
    if iid is None and env.get("CI_COMMIT_SHA"):
        mrs = api.call("GET", f"/projects/{quote(project, safe='')}/repository/commits/{env['CI_COMMIT_SHA']}"
                              "/merge_requests", ok_missing=True) or []
        iids = [m["iid"] for m in mrs if isinstance(m, Mapping) and isinstance(m.get("iid"), int)]
        iid = iids[0] if iids else None
    return GitLab(api, project, iid) if iid else None


FORGES: dict[ForgeName, Callable[[Mapping[str, str], Redactor, int | None], Forge | None]] = {
    ForgeName.GITHUB: github,
    ForgeName.GITLAB: gitlab,
}


def detect(env: Mapping[str, str]) -> ForgeName:
    if env.get("GITHUB_ACTIONS") == "true" or env.get("GITHUB_REPOSITORY"):
        return ForgeName.GITHUB
    if env.get("GITLAB_CI") or env.get("CI_API_V4_URL"):
        return ForgeName.GITLAB
    raise UsageError("no pull or merge request API found in the environment",
                     hint="run in GitHub Actions or GitLab CI, or pass --forge github|gitlab with its variables set")


def open_forge(name: ForgeName | None, env: Mapping[str, str], redactor: Redactor,
               number: int | None = None) -> Forge | None:
    """The request to comment on, or None when this pipeline has none (a push with no request)."""
    return FORGES[name or detect(env)](env, redactor, number)
