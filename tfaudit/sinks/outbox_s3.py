"""Delivery state in an S3 ledger store: what each sink has received, shared by every runner.

Under the store's PREFIX, per sink (`SINK` is the sink's id, `kind.name`):

    deliveries/SINK/state.json                     since_seq, mark_seq, backfill, delivered_total
                                                   (read-modify-write with If-Match on its ETag)
    deliveries/SINK/rows/<seq, 12 digits>-<id>.json one per record not yet settled below the mark:
                                                   attempting | failed | delivered, attempts, last error
    deliveries/SINK/lease.json                     one sender per sink across machines: a lease
                                                   taken with If-None-Match (or If-Match on an
                                                   expired one), given back by expiring it

Positions stand in for byte offsets (`mark_offset` is `mark_seq`); rows are listed from the mark
on, so a delivery reads only what is still owed. Same states and rules as tfaudit.sinks.outbox.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import Any

from tfaudit.errors import DeliveryError, TfauditError
from tfaudit.sinks.base import Item
from tfaudit.sinks.outbox import Row, SinkState, now_text
from tfaudit.trail.stores.s3 import S3Store

_LEASE_GRACE_SECONDS = 120.0


class S3Outbox:
    def __init__(self, store: S3Store) -> None:
        self.store = store
        self.path = store.url
        self._rows: dict[str, dict[str, dict[str, Any]]] = {}

    def close(self) -> None:
        pass

    def __enter__(self) -> S3Outbox:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def batched(self) -> Iterator[None]:
        """No transactions here: each object is written as it comes (same interface as the sqlite outbox)."""
        yield

    def _base(self, sink_id: str) -> str:
        return f"{self.store.prefix}deliveries/{sink_id}/"

    def _call(self, what: str, fn: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except TfauditError as e:
            raise DeliveryError(f"cannot {what} the delivery state in {self.path}: {e.message}") from e

    # -- state.json ----------------------------------------------------------------------------
    def _state(self, sink_id: str) -> tuple[dict[str, Any] | None, str | None]:
        got = self._call("read", self.store.get, self._base(sink_id) + "state.json")
        return (json.loads(got[0]), got[1]) if got else (None, None)

    def _update(self, sink_id: str, change: Any) -> None:
        """Apply change(state) -> state | None with If-Match; re-read and re-apply after a lost race."""
        for _ in range(50):
            state, etag = self._state(sink_id)
            new = change(dict(state) if state else None)
            if new is None or new == state:
                return
            body = json.dumps(new, sort_keys=True).encode()
            if self._call("write", self.store.put, self._base(sink_id) + "state.json", body, if_none_match=etag is None,
                          if_match=etag, content_type="application/json") is not None:
                return
            time.sleep(0.02)
        raise DeliveryError(f"cannot update the delivery state of {sink_id} in {self.path}: too many concurrent writers")

    def enroll(self, sink_ids: Iterable[str], tail_seq: int, tail_offset: int) -> None:
        for sid in sink_ids:
            self._update(sid, lambda st: st if st else {"sink": sid, "since_seq": tail_seq, "mark_seq": tail_seq,
                                                          "backfill": False, "delivered_total": 0, "enrolled_at": now_text()})

    def start_backfill(self, sink_id: str) -> None:
        self._update(sink_id, lambda st: {**st, "backfill": True} if st and st["since_seq"] > 0 else st)

    def finish_backfill(self, sink_id: str) -> None:
        self._update(sink_id, lambda st: {**st, "since_seq": 0, "backfill": False} if st else st)

    def sink(self, sink_id: str) -> SinkState | None:
        st, _ = self._state(sink_id)
        if st is None:
            return None
        return SinkState(sink_id, int(st["since_seq"]), int(st["mark_seq"]), int(st["mark_seq"]), bool(st["backfill"]),
                         int(st["delivered_total"]), str(st["enrolled_at"]))

    def set_mark(self, sink_id: str, seq: int, offset: int) -> None:
        self._update(sink_id, lambda st: {**st, "mark_seq": seq} if st else st)

    # -- rows -------------------------------------------------------------------------------------
    def _row_key(self, sink_id: str, seq: int, record_id: str) -> str:
        return f"{self._base(sink_id)}rows/{seq:012d}-{record_id}.json"

    def rows(self, sink_id: str, min_seq: int = 0) -> dict[str, Row]:
        keys = list(self._call("list", self.store.keys, f"deliveries/{sink_id}/rows/",
                               f"{self._base(sink_id)}rows/{min_seq:012d}."))
        with ThreadPoolExecutor(8) as pool:
            bodies = list(pool.map(lambda k: self._call("read", self.store.get, k), keys))
        cache = self._rows.setdefault(sink_id, {})
        out: dict[str, Row] = {}
        for got in bodies:
            if got is None:
                continue
            r = json.loads(got[0])
            cache[r["record_id"]] = r
            out[r["record_id"]] = Row(r["record_id"], int(r["seq"]), r["state"], int(r["attempts"]), r.get("last_error"),
                                      r.get("last_attempt_at"))
        return out

    def _put_rows(self, sink_id: str, rows: list[dict[str, Any]]) -> None:
        def put(r: dict[str, Any]) -> None:
            self._call("write", self.store.put, self._row_key(sink_id, r["seq"], r["record_id"]),
                       json.dumps(r, sort_keys=True).encode(), content_type="application/json")
            self._rows.setdefault(sink_id, {})[r["record_id"]] = r

        with ThreadPoolExecutor(8) as pool:
            list(pool.map(put, rows))

    def _row(self, sink_id: str, it: Item) -> dict[str, Any]:
        return dict(self._rows.get(sink_id, {}).get(it.id) or {
            "record_id": it.id, "seq": it.seq, "run_id": it.run_id, "state": "new", "attempts": 0, "last_error": None,
            "first_attempt_at": None, "last_attempt_at": None, "delivered_at": None})

    def attempting(self, sink_id: str, items: Sequence[Item]) -> None:
        now = now_text()
        rows = [{**(r := self._row(sink_id, it)), "state": "attempting", "attempts": r["attempts"] + 1,
                 "first_attempt_at": r["first_attempt_at"] or now, "last_attempt_at": now} for it in items]
        self._put_rows(sink_id, rows)

    def delivered(self, sink_id: str, items: Sequence[Item]) -> None:
        now = now_text()
        fresh = [it for it in items if self._row(sink_id, it)["state"] != "delivered"]
        self._put_rows(sink_id, [{**self._row(sink_id, it), "state": "delivered", "delivered_at": now, "last_error": None,
                                  "attempts": max(1, self._row(sink_id, it)["attempts"])} for it in fresh])
        if fresh:
            self._update(sink_id, lambda st: {**st, "delivered_total": st["delivered_total"] + len(fresh)} if st else st)

    def failed(self, sink_id: str, items: Sequence[Item], error: str) -> None:
        now = now_text()
        rows = [{**(r := self._row(sink_id, it)), "state": "failed", "last_error": error,
                 "attempts": max(1, r["attempts"]), "first_attempt_at": r["first_attempt_at"] or now, "last_attempt_at": now}
                for it in items if self._row(sink_id, it)["state"] != "delivered"]
        self._put_rows(sink_id, rows)

    def last_error(self, sink_id: str) -> tuple[str, str] | None:
        failed = [r for r in self._rows.get(sink_id, {}).values() if r["state"] == "failed" and r.get("last_error")]
        if not failed:
            return None
        r = max(failed, key=lambda r: r.get("last_attempt_at") or "")
        return str(r["last_error"]), str(r.get("last_attempt_at"))


@contextmanager
def s3_sink_lock(store: S3Store, sink_id: str, wait_seconds: float) -> Iterator[bool]:
    """One sender per sink across machines: a lease object, taken with a conditional write."""
    key = f"{store.prefix}deliveries/{sink_id}/lease.json"
    me = uuid.uuid4().hex
    end = time.monotonic() + wait_seconds

    def body(expires: float) -> bytes:
        return json.dumps({"owner": me, "expires": expires}).encode()

    etag: str | None = None
    try:
        while etag is None:
            current = store.get(key)
            if current is None:
                etag = store.put(key, body(time.time() + wait_seconds + _LEASE_GRACE_SECONDS), if_none_match=True,
                                 content_type="application/json")
            elif float(json.loads(current[0]).get("expires", 0)) < time.time():  # expired: its holder died or gave it back
                etag = store.put(key, body(time.time() + wait_seconds + _LEASE_GRACE_SECONDS), if_match=current[1],
                                 content_type="application/json")
            if etag is None:
                if time.monotonic() >= end:
                    break
                time.sleep(0.2)
    except TfauditError as e:
        raise DeliveryError(f"cannot lock the sink {sink_id} in {store.url}: {e.message}") from e
    try:
        yield etag is not None
    finally:
        if etag is not None:
            try:
                store.put(key, body(0.0), if_match=etag, content_type="application/json")
            except TfauditError:
                pass  # it expires on its own
