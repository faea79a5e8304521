"""A real HTTP server on 127.0.0.1 speaking the few GitHub and GitLab endpoints tfaudit's comments use.

GitHub (REST, https://docs.github.com/rest/issues): list/create issue comments, update a comment,
list/add/remove issue labels, pull requests of a commit. GitLab (v4, https://docs.gitlab.com/api/notes/):
list/create/update merge request notes, update a merge request's labels, merge requests of a commit.
It checks the token header like the real APIs and paginates with per_page/page.
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit


@dataclass
class ForgeState:
    token: str
    comments: dict[int, dict[str, Any]] = field(default_factory=dict)  # id -> {"id", "body", "request"}
    labels: dict[str, set[str]] = field(default_factory=dict)  # request -> labels
    commit_requests: dict[str, list[int]] = field(default_factory=dict)  # sha -> request numbers
    requests: list[tuple[str, str, str]] = field(default_factory=list)  # (method, path, auth header)
    next_id: int = 1000
    lock: threading.Lock = field(default_factory=threading.Lock)

    def on(self, request: str) -> list[dict[str, Any]]:
        return [c for c in sorted(self.comments.values(), key=lambda c: c["id"]) if c["request"] == request]


def _page(items: list[Any], query: dict[str, list[str]]) -> list[Any]:
    per = int(query.get("per_page", ["30"])[0])
    page = int(query.get("page", ["1"])[0])
    return items[(page - 1) * per: page * per]


class _Handler(BaseHTTPRequestHandler):
    state: ForgeState

    def log_message(self, *args: Any) -> None:
        pass

    def _send(self, status: int, body: Any = None) -> None:
        data = b"" if body is None else json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _body(self) -> Any:
        n = int(self.headers.get("Content-Length") or 0)
        return json.loads(self.rfile.read(n)) if n else None

    def _authorized(self) -> bool:
        st = self.state
        auth = (self.headers.get("Authorization") or self.headers.get("PRIVATE-TOKEN")
                or self.headers.get("JOB-TOKEN") or "")
        st.requests.append((self.command, self.path, auth))
        return auth in (f"Bearer {st.token}", st.token)

    def _dispatch(self) -> None:
        if not self._authorized():
            return self._send(401, {"message": "Bad credentials"})
        url = urlsplit(self.path)
        q = parse_qs(url.query)
        with self.state.lock:
            for pattern, method, fn in _ROUTES:
                m = re.fullmatch(pattern, url.path)
                if m and method == self.command:
                    return fn(self, q, *[unquote(g) for g in m.groups()])
        self._send(404, {"message": "Not Found"})

    do_GET = do_POST = do_PATCH = do_PUT = do_DELETE = _dispatch


def _new_comment(h: _Handler, request: str) -> None:
    st = h.state
    st.next_id += 1
    c = {"id": st.next_id, "body": h._body()["body"], "request": request}
    st.comments[c["id"]] = c
    h._send(201, {"id": c["id"], "body": c["body"]})


def _edit_comment(h: _Handler, cid: str, request: str | None) -> None:
    c = h.state.comments.get(int(cid))
    if c is None or (request is not None and c["request"] != request):
        return h._send(404, {"message": "Not Found"})
    c["body"] = h._body()["body"]
    h._send(200, {"id": c["id"], "body": c["body"]})


def _gh_list(h: _Handler, q: dict[str, list[str]], repo: str, n: str) -> None:
    h._send(200, _page([{"id": c["id"], "body": c["body"]} for c in h.state.on(f"{repo}#{n}")], q))


def _gh_labels_add(h: _Handler, q: dict[str, list[str]], repo: str, n: str) -> None:
    labels = h.state.labels.setdefault(f"{repo}#{n}", set())
    labels.update(h._body()["labels"])
    h._send(200, [{"name": lb} for lb in sorted(labels)])


def _gh_labels_delete(h: _Handler, q: dict[str, list[str]], repo: str, n: str, name: str) -> None:
    labels = h.state.labels.setdefault(f"{repo}#{n}", set())
    if name not in labels:
        return h._send(404, {"message": "Label does not exist"})
    labels.discard(name)
    h._send(200, [{"name": lb} for lb in sorted(labels)])


def _gl_labels(h: _Handler, q: dict[str, list[str]], project: str, iid: str) -> None:
    body = h._body()
    labels = h.state.labels.setdefault(f"{project}!{iid}", set())
    labels.update(x for x in body.get("add_labels", "").split(",") if x)
    labels.difference_update(x for x in body.get("remove_labels", "").split(",") if x)
    h._send(200, {"iid": int(iid), "labels": sorted(labels)})


_R = r"/repos/([^/]+/[^/]+)"
_P = r"/api/v4/projects/([^/]+)"
_ROUTES = [
    (_R + r"/issues/(\d+)/comments", "GET", _gh_list),
    (_R + r"/issues/(\d+)/comments", "POST", lambda h, q, r, n: _new_comment(h, f"{r}#{n}")),
    (_R + r"/issues/comments/(\d+)", "PATCH", lambda h, q, r, cid: _edit_comment(h, cid, None)),
    (_R + r"/issues/(\d+)/labels", "GET",
     lambda h, q, r, n: h._send(200, [{"name": lb} for lb in sorted(h.state.labels.get(f"{r}#{n}", ()))])),
    (_R + r"/issues/(\d+)/labels", "POST", _gh_labels_add),
    (_R + r"/issues/(\d+)/labels/([^/]+)", "DELETE", _gh_labels_delete),
    (_R + r"/commits/([0-9a-f]+)/pulls", "GET",
     lambda h, q, r, sha: h._send(200, [{"number": n} for n in h.state.commit_requests.get(sha, [])])),
    (_P + r"/merge_requests/(\d+)/notes", "GET",
     lambda h, q, p, n: h._send(200, _page([{"id": c["id"], "body": c["body"], "system": False}
                                            for c in h.state.on(f"{p}!{n}")], q))),
    (_P + r"/merge_requests/(\d+)/notes", "POST", lambda h, q, p, n: _new_comment(h, f"{p}!{n}")),
    (_P + r"/merge_requests/(\d+)/notes/(\d+)", "PUT", lambda h, q, p, n, cid: _edit_comment(h, cid, f"{p}!{n}")),
    (_P + r"/merge_requests/(\d+)", "PUT", _gl_labels),
    (_P + r"/repository/commits/([0-9a-f]+)/merge_requests", "GET",
     lambda h, q, p, sha: h._send(200, [{"iid": n} for n in h.state.commit_requests.get(sha, [])])),
]


@contextmanager
def forge_server(token: str) -> Iterator[tuple[str, ForgeState]]:
    """(base URL, state) of a server on a free loopback port, stopped on exit."""
    state = ForgeState(token)
    handler = type("Handler", (_Handler,), {"state": state})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", state
    finally:
        server.shutdown()
        server.server_close()
