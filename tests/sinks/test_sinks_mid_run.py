"""A webhook that fails in the middle of a run, against a real HTTP server on 127.0.0.1: retried on the
kept-alive connection, each record delivered exactly once, and the outbox settled exactly as far
as the receiver took records."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from sinks_support import Receiver, append_run, new_signer
from tfaudit.config import parse_config
from tfaudit.sinks.delivery import deliver, enroll, status
from tfaudit.sinks.outbox import Outbox

pytestmark = [pytest.mark.slow]

SECRET = "whsec-mid-run-5d2a"
SINK = "webhook.siem"
WEBHOOK = 'sink "webhook" "siem" {\n  url = "@HOOK@/ingest"\n  secret_env = "HOOK_SECRET"\n@MODE@}\n'
CHANGES = [(f"aws_s3_bucket.b{i}", "create", "succeeded") for i in range(10)]


class World:
    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.signer, _ = new_signer(tmp)
        self.ledger = tmp / "ledger.jsonl"
        self.hook = Receiver(secret=SECRET.encode())

    def config(self, mode: str = "record", delivery: str = "max_attempts = 3\ndeadline_seconds = 20") -> Any:
        p = self.tmp / ".tfaudit.hcl"
        p.write_text(WEBHOOK.replace("@HOOK@", self.hook.url).replace("@MODE@", f'  mode = "{mode}"\n')
                     + f"delivery {{\n{delivery}\n}}\n")
        cfg = parse_config(p)
        enroll(self.ledger, cfg.section("sink"))
        return cfg

    def deliver(self, cfg: Any) -> Any:
        return deliver(self.ledger, cfg.section("sink"), cfg.section("delivery"), {"HOOK_SECRET": SECRET})


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    w = World(tmp_path)
    yield w
    w.hook.stop()


def test_a_500_mid_run_is_retried_on_the_same_connection_and_each_record_arrives_once(world: World) -> None:
    cfg = world.config()
    world.hook.answer = lambda n: 500 if n == 5 else 200
    appended = append_run(world.ledger, world.signer, CHANGES)
    report = world.deliver(cfg)
    assert report.pending == 0 and report.delivered == len(appended)
    ids = [a.record["id"] for a in appended]
    assert [a.headers["Idempotency-Key"] for a in world.hook.accepted()] == ids  # each once, in ledger order
    sent = world.hook.all()
    assert [a.status for a in sent] == [200] * 4 + [500] + [200] * (len(ids) - 4)
    assert sent[4].headers["Idempotency-Key"] == sent[5].headers["Idempotency-Key"] == ids[4]  # the retry
    assert all(a.signature_ok for a in sent)
    assert len({a.client_port for a in sent}) == 1  # one TCP connection for the run, the retry included
    st = status(world.ledger, cfg.section("sink"))[0]
    assert st.pending == 0 and st.delivered_total == len(ids) and st.settled_through_seq == appended[-1].seq


def test_an_endpoint_failing_mid_run_leaves_the_outbox_settled_as_far_as_it_took_records(world: World) -> None:
    cfg = world.config(delivery="max_attempts = 2\ndeadline_seconds = 20")
    world.hook.answer = lambda n: 503 if n > 4 else 200  # takes four records, then is unwell
    appended = append_run(world.ledger, world.signer, CHANGES)
    ids = [a.record["id"] for a in appended]
    report = world.deliver(cfg)
    assert report.delivered == 4 and report.pending == len(ids) - 4
    assert "HTTP 503" in report.sinks[0].error
    # the fifth record was tried max_attempts times; the rest were not sent to an unwell endpoint
    assert [a.headers["Idempotency-Key"] for a in world.hook.all()] == ids[:4] + [ids[4]] * 2
    st = status(world.ledger, cfg.section("sink"))[0]
    assert (st.settled_through_seq, st.delivered_total, st.pending, st.failed, st.in_doubt) == (
        appended[3].seq, 4, len(ids) - 4, len(ids) - 4, 0)
    assert st.oldest_pending_seq == appended[4].seq and "HTTP 503" in (st.last_error or "")
    with Outbox(world.ledger) as ob:
        rows = ob.rows(SINK)
    assert sorted(rows) == sorted(ids[4:]) and {r.state for r in rows.values()} == {"failed"}

    world.hook.answer = None  # back to health: the next delivery sends only what is owed
    report = world.deliver(cfg)
    assert report.delivered == len(ids) - 4 and report.pending == 0
    assert [a.headers["Idempotency-Key"] for a in world.hook.accepted()] == ids
    st = status(world.ledger, cfg.section("sink"))[0]
    assert (st.settled_through_seq, st.delivered_total, st.pending, st.failed) == (appended[-1].seq, len(ids), 0, 0)


def test_batch_mode_retries_a_failed_batch_and_delivers_each_run_once(world: World) -> None:
    cfg = world.config(mode="batch")
    world.hook.answer = lambda n: 500 if n == 2 else 200  # the second run's POST fails once
    first = append_run(world.ledger, world.signer, CHANGES)
    second = append_run(world.ledger, world.signer, CHANGES[:3])
    report = world.deliver(cfg)
    assert report.pending == 0 and report.delivered == len(first) + len(second)
    got = world.hook.accepted()
    assert [[r["id"] for r in a.json()["records"]] for a in got] == [
        [a.record["id"] for a in first], [a.record["id"] for a in second]]
    sent = world.hook.all()
    assert [a.status for a in sent] == [200, 500, 200]
    assert sent[1].body == sent[2].body and sent[1].headers["Idempotency-Key"] == sent[2].headers["Idempotency-Key"]
    assert len({a.client_port for a in sent}) == 1
    assert world.deliver(cfg).delivered == 0 and len(world.hook.all()) == 3  # nothing owed, nothing re-sent
