"""Pull and merge request comments: one per root module and workspace, updated in place on every push.

The end-to-end tests run real terraform through tfaudit (plan, plan again after a "second push",
apply the saved plan) and talk to a real HTTP server on 127.0.0.1 that implements GitHub's issue
comment and label endpoints and GitLab's merge request notes.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from forge_server import ForgeState, forge_server
from tfaudit.ci import comment, forge
from tfaudit.errors import ForgeError, UsageError
from tfaudit.query import RunSummary
from tfaudit.redact import Redactor

GH_TOKEN = "ghs_" + "T0k3n" * 8
GL_TOKEN = "glpat-" + "S3cr3tT0k3nV4lu3xyz12"


def _run(command: str, planned: dict[str, int], changes: list[dict[str, Any]], **kw: Any) -> RunSummary:
    rec = {"type": "plan.recorded" if command == "plan" else "run.started", "chain": {"seq": 7},
           "plan": {"summary": planned, "changes": changes}}
    return RunSummary(run_id="0123456789abcdef", ledger="l", command=command, time="2026-01-01T00:00:00Z",
                      actor="alice", workspace="default", working_dir="/repo/infra", planned=planned,
                      records=[rec], **kw)


# --- the body and labels (no server) ---------------------------------------------------------------
def test_destroy_and_replace_warnings_come_first() -> None:
    changes = [{"address": "terraform_data.new", "actions": ["create"]},
               {"address": "terraform_data.gone", "actions": ["delete"]},
               {"address": "terraform_data.swap", "actions": ["delete", "create"]}]
    body = comment.render(_run("plan", {"create": 1, "delete": 1, "replace": 1}, changes), "infra")
    assert body.startswith('<!-- tfaudit:comment key="infra@default" -->')
    warn_destroy = body.index("destroys 1 resource:** `terraform_data.gone`")
    warn_replace = body.index("replaces (destroys, then creates) 1 resource:** `terraform_data.swap`")
    listing = body.index("<details><summary>Changes (3)</summary>")
    assert warn_destroy < warn_replace < body.index("**Plan:**") < listing
    lines = body[listing:].splitlines()
    order = [ln.split()[-2] for ln in lines if ln.startswith(("-", "+", "!")) and "terraform_data" in ln]
    assert order == ["terraform_data.gone", "terraform_data.swap", "terraform_data.new"]


def test_labels_follow_tfcmt() -> None:
    assert comment.labels_for({"create": 1, "replace": 1}) == ("destroy",)
    assert comment.labels_for({"update": 2}) == ("add-or-update",)
    assert comment.labels_for({}) == ("no-changes",)
    assert comment.labels_for({"no-op": 3}) == ("no-changes",)


def test_module_key_is_relative_to_the_repository() -> None:
    assert comment.module_key("/w/repo/infra/prod", "/w/repo") == "infra/prod"
    assert comment.module_key("/w/repo", "/w/repo") == "."
    assert comment.module_key("/elsewhere/prod", "/w/repo") == "prod"


def test_missing_token_is_a_usage_error_naming_the_variable() -> None:
    with pytest.raises(UsageError, match="GITHUB_TOKEN is not set"):
        forge.open_forge(forge.ForgeName.GITHUB, {"GITHUB_REPOSITORY": "a/b"}, Redactor(), 1)


def test_plain_http_to_a_remote_api_is_refused() -> None:
    env = {"GITHUB_TOKEN": GH_TOKEN, "GITHUB_REPOSITORY": "a/b", "GITHUB_API_URL": "http://api.example.com"}
    with pytest.raises(UsageError, match="plain http"):
        forge.open_forge(forge.ForgeName.GITHUB, env, Redactor(), 1)


# --- against the local server ------------------------------------------------------------------------
def _gh_env(url: str, **extra: str) -> dict[str, str]:
    return {"GITHUB_API_URL": url, "GITHUB_TOKEN": GH_TOKEN, "GITHUB_REPOSITORY": "acme/infra",
            "GITHUB_ACTIONS": "true", **extra}


def _gl_env(url: str, **extra: str) -> dict[str, str]:
    return {"CI_API_V4_URL": url + "/api/v4", "GITLAB_TOKEN": GL_TOKEN, "CI_PROJECT_ID": "acme/infra",
            "GITLAB_CI": "true", **extra}


@pytest.mark.slow
def test_a_wrong_token_fails_with_a_hint_and_never_shows_the_token() -> None:
    with forge_server("the-right-token") as (url, _state):
        f = forge.open_forge(None, _gh_env(url), Redactor(), 5)
        assert f is not None
        with pytest.raises(ForgeError) as err:
            comment.post(f, "<!-- tfaudit:comment x -->", "infra", "default", {})
    text = str(err.value)
    assert "HTTP 401" in text and "pull-requests: write" in text
    assert GH_TOKEN not in text


@pytest.mark.slow
def test_someone_elses_marker_comment_is_left_alone() -> None:
    with forge_server(GH_TOKEN) as (url, state):
        state.comments[1] = {"id": 1, "body": comment.marker("infra", "default") + "\nplanted", "request": "acme/infra#5"}
        # the real API answers 403 when the token's user did not write the comment
        f = forge.open_forge(None, _gh_env(url), Redactor(), 5)
        assert f is not None
        original = f.update

        def update(cid: int, body: str) -> None:
            if cid == 1:
                raise ForgeError("GitHub API PATCH: HTTP 403", status=403)
            original(cid, body)

        f.update = update  # type: ignore[method-assign]
        posted = comment.post(f, comment.marker("infra", "default") + "\nours", "infra", "default", {})
        assert posted.created and posted.comment_id != 1
        assert state.comments[1]["body"].endswith("planted")


@pytest.mark.slow
def test_the_commit_of_a_push_finds_its_pull_request() -> None:
    with forge_server(GH_TOKEN) as (url, state):
        state.commit_requests["abc123"] = [42]
        f = forge.open_forge(None, _gh_env(url, GITHUB_SHA="abc123"), Redactor())
        assert f is not None and f.where == "acme/infra#42"
        assert forge.open_forge(None, _gh_env(url, GITHUB_SHA="fff000"), Redactor()) is None


@pytest.mark.slow
def test_gitlab_finds_the_merge_request_of_a_commit_and_prefers_gitlab_token() -> None:
    with forge_server(GL_TOKEN) as (url, state):
        state.commit_requests["beef01"] = [9]
        env = {**_gl_env(url, CI_COMMIT_SHA="beef01"), "CI_JOB_TOKEN": "job-token-not-used"}
        f = forge.open_forge(None, env, Redactor())
        assert f is not None and f.where == "acme/infra!9"
        comment.post(f, comment.marker("infra", "prod") + "\nbody", "infra", "prod", {"delete": 1})
        assert state.labels["acme/infra!9"] == {"destroy"}
        assert all(auth == GL_TOKEN for _m, _p, auth in state.requests)


# --- the whole flow with real terraform ----------------------------------------------------------------
def _flow(tf_workdir: Callable[[str], Path], run_tfaudit: Callable[..., Any], keypair: tuple[Path, Path],
          env: dict[str, str], state: ForgeState, request: str) -> None:
    wd = tf_workdir("e2e")
    tf_env = {"TFAUDIT_SIGNING_KEY": str(keypair[0])}

    def step(*args: str) -> None:
        res = run_tfaudit(*args, cwd=wd, env=tf_env)
        assert res.returncode == 0, res.output

    def comment_now() -> tuple[str, int, str]:
        """`tfaudit ci comment` as the CI step runs it: (created|updated, comment id, labels)."""
        res = run_tfaudit("ci", "comment", cwd=wd, env={**tf_env, **env, "GITHUB_WORKSPACE": str(wd.parent)})
        assert res.returncode == 0, res.output
        m = re.fullmatch(r"(created|updated) comment (\d+) on \S+ \(labels: ([\w, -]+)\)\n", res.stdout)
        assert m, res.stdout
        return m.group(1), int(m.group(2)), m.group(3)

    step("apply", "-auto-approve", "-input=false")  # what main already has
    # push 1: a replacement
    step("plan", "-input=false", "-out=plan.tfplan", "-var", "rev=2")
    first = comment_now()
    assert first[0] == "created" and first[2] == "destroy"
    bodies = state.on(request)
    assert len(bodies) == 1
    body = bodies[0]["body"]
    assert "`destroy.replace`" in body and "`terraform_data.replaced`" in body
    assert "`destroy.delete`" not in body
    # push 2: the plan also deletes terraform_data.extra[0]; the same comment is edited
    step("plan", "-input=false", "-out=plan.tfplan", "-var", "rev=2", "-var", "extra=false")
    second = comment_now()
    assert second[:2] == ("updated", first[1])
    bodies = state.on(request)
    assert len(bodies) == 1, [b["body"][:80] for b in bodies]
    body = bodies[0]["body"]
    assert "destroys 1 resource:** `terraform_data.extra[0]`" in body
    assert "`destroy.delete`" in body and "`destroy.replace`" in body
    assert "Apply:" not in body
    # apply of the saved plan: the comment gains every resource's outcome
    step("apply", "-input=false", "plan.tfplan")
    third = comment_now()
    assert third[:2] == ("updated", first[1])
    bodies = state.on(request)
    assert len(bodies) == 1
    body = bodies[0]["body"]
    assert "**Apply: ✅ succeeded**" in body
    assert "| `terraform_data.extra[0]` | delete | ✅ succeeded |" in body
    assert "| `terraform_data.replaced` | replace | ✅ succeeded |" in body
    assert "`destroy.delete`" in body  # the findings stay with the outcome
    assert state.labels[request] == {"destroy"}
    assert all(GH_TOKEN not in b["body"] and GL_TOKEN not in b["body"] for b in bodies)


@pytest.mark.slow
@pytest.mark.terraform
def test_github_pull_request_comment_is_created_once_then_updated(
        tf_workdir: Callable[[str], Path], run_tfaudit: Callable[..., Any], keypair: tuple[Path, Path],
        tmp_path: Path) -> None:
    event = tmp_path / "event.json"
    event.write_text(json.dumps({"pull_request": {"number": 7}}))
    with forge_server(GH_TOKEN) as (url, state):
        _flow(tf_workdir, run_tfaudit, keypair, _gh_env(url, GITHUB_EVENT_PATH=str(event)), state, "acme/infra#7")
        assert all(auth == f"Bearer {GH_TOKEN}" for _m, _p, auth in state.requests)
        assert any(m == "PATCH" for m, _p, _a in state.requests)


@pytest.mark.slow
@pytest.mark.terraform
def test_gitlab_merge_request_note_is_created_once_then_updated(
        tf_workdir: Callable[[str], Path], run_tfaudit: Callable[..., Any], keypair: tuple[Path, Path]) -> None:
    with forge_server(GL_TOKEN) as (url, state):
        _flow(tf_workdir, run_tfaudit, keypair, _gl_env(url, CI_MERGE_REQUEST_IID="3"), state, "acme/infra!3")
        assert all(auth == GL_TOKEN for _m, _p, auth in state.requests)
        assert any(m == "PUT" and "/notes/" in p for m, p, _a in state.requests)
