"""Webhook, Slack and PagerDuty sinks against real HTTP servers on 127.0.0.1."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from sinks_support import Receiver, append_run, new_signer
from tfaudit.config import parse_config
from tfaudit.trail.signing import load_verifier, signing_payload
from tfaudit.sinks.delivery import deliver, enroll, status
from tfaudit.sinks.outbox import Outbox

pytestmark = [pytest.mark.slow]

SECRET = "whsec-test-3b9f1c2d"
PD_KEY = "R0UTINGKEY0123456789abcdef0123456"


class World:
    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.signer, self.pub = new_signer(tmp)
        self.ledger = tmp / ".tfaudit" / "ledger.jsonl"
        self.hook = Receiver(secret=SECRET.encode())
        self.slack = Receiver()
        self.pd = Receiver()
        self.env = {"HOOK_SECRET": SECRET, "SLACK_URL": f"{self.slack.url}/services/T0/B0/secretpart",
                    "PD_KEY": PD_KEY}

    def config(self, sinks: str, delivery: str = "deadline_seconds = 6") -> Any:
        p = self.tmp / ".tfaudit.hcl"
        p.write_text(sinks.replace("@HOOK@", self.hook.url).replace("@PD@", self.pd.url)
                     + f"\ndelivery {{\n{delivery}\n}}\n")
        cfg = parse_config(p)
        enroll(self.ledger, cfg.section("sink"))
        return cfg

    def deliver(self, cfg: Any, **kw: Any) -> Any:
        return deliver(self.ledger, cfg.section("sink"), cfg.section("delivery"), self.env, **kw)

    def close(self) -> None:
        for r in (self.hook, self.slack, self.pd):
            r.stop()


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    w = World(tmp_path)
    yield w
    w.close()


WEBHOOK = 'sink "webhook" "siem" {\n  url = "@HOOK@/ingest"\n  secret_env = "HOOK_SECRET"\n}\n'
ALERTS = ('sink "slack" "alerts" {\n  url_env = "SLACK_URL"\n}\n'
          'sink "pagerduty" "oncall" {\n  routing_key_env = "PD_KEY"\n  url = "@PD@/v2/enqueue"\n}\n')
CHANGES = [("aws_s3_bucket.logs", "create", "succeeded"), ("aws_iam_role.old", "delete", "succeeded"),
           ("aws_instance.web", "replace", "succeeded"), ("aws_security_group.db", "update", "failed")]


def test_webhook_gets_every_record_signed_with_its_id_as_idempotency_key(world: World) -> None:
    cfg = world.config(WEBHOOK)
    appended = append_run(world.ledger, world.signer, CHANGES)
    report = world.deliver(cfg)
    assert report.pending == 0 and report.delivered == len(appended)
    got = world.hook.accepted("/ingest")
    assert [a.headers["Idempotency-Key"] for a in got] == [a.record["id"] for a in appended]
    assert all(a.signature_ok for a in got)
    assert [a.body for a in got] == [a.line for a in appended]  # the exact ledger bytes
    assert got[1].headers["X-Tfaudit-Record-Type"] == "resource.changed"
    assert got[0].headers["Content-Type"] == "application/json"
    # the receiver can check each record's own signature with the public key
    verifier = load_verifier(world.pub)
    for a in got:
        rec = a.json()
        verifier.verify(base64.b64decode(rec["signature"]["value"]), signing_payload(rec))
    # nothing is owed any more, and delivering again sends nothing
    assert world.deliver(cfg).delivered == 0
    assert len(world.hook.all()) == len(appended)
    st = status(world.ledger, cfg.section("sink"))[0]
    assert st.pending == 0 and st.delivered_total == len(appended) and st.settled_through_seq == appended[-1].seq


def test_webhook_reuses_one_connection_for_a_run_and_copes_with_a_receiver_that_closes(world: World) -> None:
    cfg = world.config(WEBHOOK)
    appended = append_run(world.ledger, world.signer, CHANGES * 5)
    assert world.deliver(cfg).pending == 0
    got = world.hook.accepted("/ingest")
    assert len(got) == len(appended)
    assert len({a.client_port for a in got}) == 1  # one TCP connection, kept alive, for every record
    # a receiver that closes after every answer (HTTP/1.0) still gets each record exactly once
    world.hook.stop()
    world.hook.keep_alive = False
    world.hook.start()
    cfg = world.config(WEBHOOK)
    more = append_run(world.ledger, world.signer, CHANGES)
    assert world.deliver(cfg).pending == 0
    late = world.hook.accepted("/ingest")[len(got):]
    assert [a.headers["Idempotency-Key"] for a in late] == [a.record["id"] for a in more]
    assert len({a.client_port for a in late}) == len(late)


def test_webhook_batch_mode_posts_one_request_per_run(world: World) -> None:
    cfg = world.config(WEBHOOK.replace("}\n", '  mode = "batch"\n  types = ["resource.changed"]\n}\n'))
    first = append_run(world.ledger, world.signer, CHANGES)
    second = append_run(world.ledger, world.signer, CHANGES[:1])
    assert world.deliver(cfg).pending == 0
    got = world.hook.accepted()
    assert len(got) == 2
    assert [len(a.json()["records"]) for a in got] == [4, 1]
    assert got[0].headers["X-Tfaudit-Run-Id"] == first[0].record["run"]["id"]
    assert {r["id"] for r in got[0].json()["records"]} == {a.record["id"] for a in first[1:-1]}
    assert got[1].headers["Idempotency-Key"].startswith("batch-")
    assert got[1].json()["records"][0]["id"] == second[1].record["id"]


@pytest.mark.parametrize("mode", ["record", "batch"])
def test_webhook_speaks_the_cloudevents_http_binding(world: World, mode: str) -> None:
    cfg = world.config(WEBHOOK.replace("}\n", f'  format = "cloudevents"\n  mode = "{mode}"\n}}\n'))
    appended = append_run(world.ledger, world.signer, CHANGES)
    assert world.deliver(cfg).pending == 0
    got = world.hook.accepted("/ingest")
    if mode == "record":
        assert len(got) == len(appended)
        assert all(a.headers["Content-Type"].startswith("application/cloudevents+json") for a in got)
        events = [a.json() for a in got]
    else:
        assert len(got) == 1 and got[0].headers["Content-Type"].startswith("application/cloudevents-batch+json")
        events = got[0].json()
        assert isinstance(events, list)
    assert [e["specversion"] for e in events] == ["1.0"] * len(appended)
    assert [e["id"] for e in events] == [a.record["id"] for a in appended]
    assert all(a.signature_ok for a in got)


def test_a_dead_webhook_costs_seconds_and_then_catches_up_exactly_once(world: World) -> None:
    cfg = world.config(WEBHOOK, "max_attempts = 3\ndeadline_seconds = 10")
    world.hook.stop()  # connection refused
    appended = append_run(world.ledger, world.signer, CHANGES)
    t0 = time.monotonic()
    report = world.deliver(cfg)
    took = time.monotonic() - t0
    assert took < 5, took  # three quick attempts at the first record, the rest not hammered
    assert report.pending == len(appended) and report.delivered == 0
    assert "cannot connect" in report.sinks[0].error
    st = status(world.ledger, cfg.section("sink"))[0]
    assert st.pending == len(appended) and st.oldest_pending_seq == 1 and "cannot connect" in st.last_error

    world.hook.start()  # same port, back up
    more = append_run(world.ledger, world.signer, CHANGES[:1])
    report = world.deliver(cfg)
    assert report.pending == 0 and report.delivered == len(appended) + len(more)
    keys = [a.headers["Idempotency-Key"] for a in world.hook.all()]
    assert keys == [a.record["id"] for a in appended + more]  # each exactly once, in ledger order


def test_500s_and_429s_are_retried_within_the_run(world: World) -> None:
    cfg = world.config(WEBHOOK, "max_attempts = 4\ndeadline_seconds = 20")
    world.hook.fail_first = 2
    appended = append_run(world.ledger, world.signer, CHANGES[:1])
    report = world.deliver(cfg)
    assert report.pending == 0
    statuses = [a.status for a in world.hook.all()]
    assert statuses[:3] == [500, 500, 200]
    assert len(world.hook.accepted()) == len(appended)

    world.hook.mode = "429"  # Retry-After: 0, then give up after max_attempts
    append_run(world.ledger, world.signer, CHANGES[:1])
    before = len(world.hook.all())
    report = world.deliver(cfg)
    assert report.pending == 3 and "HTTP 429" in report.sinks[0].error
    assert len(world.hook.all()) - before == 4  # max_attempts for the first record, then it stops


def test_a_4xx_is_not_retried_but_the_other_records_still_go(world: World) -> None:
    cfg = world.config(WEBHOOK)
    world.hook.mode = "400"
    appended = append_run(world.ledger, world.signer, CHANGES[:2])
    report = world.deliver(cfg)
    assert len(world.hook.all()) == len(appended)  # one attempt each
    assert report.pending == len(appended) and "HTTP 400" in report.sinks[0].error


def test_a_slow_webhook_times_out_within_the_deadline_and_does_not_hold_other_sinks(world: World) -> None:
    cfg = world.config(WEBHOOK.replace("}\n", "  timeout_seconds = 0.5\n}\n")
                       + 'sink "file" "copy" {\n  path = "copy.jsonl"\n}\n', "max_attempts = 2\ndeadline_seconds = 4")
    world.hook.mode = "slow"
    world.hook.slow_seconds = 2.0
    appended = append_run(world.ledger, world.signer, CHANGES)
    t0 = time.monotonic()
    report = world.deliver(cfg)
    took = time.monotonic() - t0
    by = {r.sink: r for r in report.sinks}
    assert took < 4.5, took
    assert by["webhook.siem"].pending == len(appended) and "timed out" in by["webhook.siem"].error
    assert by["file.copy"].pending == 0 and by["file.copy"].seconds < 1.0
    assert (world.tmp / "copy.jsonl").read_bytes() == world.ledger.read_bytes()


def test_missing_secret_keeps_records_owed_with_a_clear_error(world: World) -> None:
    cfg = world.config(WEBHOOK)
    append_run(world.ledger, world.signer, CHANGES[:1])
    world.env.pop("HOOK_SECRET")
    report = world.deliver(cfg)
    assert report.pending == 3
    assert report.sinks[0].error == "the webhook secret variable HOOK_SECRET is not set " \
                                    "(export HOOK_SECRET (the HMAC secret shared with the receiver))"
    assert not world.hook.all()


def test_slack_and_pagerduty_get_one_readable_alert_per_run(world: World) -> None:
    cfg = world.config(ALERTS)
    quiet = append_run(world.ledger, world.signer, [("aws_s3_bucket.logs", "create", "succeeded")])
    noisy = append_run(world.ledger, world.signer, CHANGES, workspace="prod", user="bob")
    report = world.deliver(cfg)
    assert report.pending == 0
    run_id = noisy[0].record["run"]["id"]

    (msg,) = [a.json() for a in world.slack.accepted()]  # the quiet run raised no alert
    assert world.slack.accepted()[0].path == "/services/T0/B0/secretpart"
    assert msg["text"].startswith("tfaudit: apply partial in workspace prod by bob")
    text = json.dumps(msg["blocks"])
    for needle in ("*Actor*\\nbob", "*Workspace*\\nprod", "*Outcome*\\npartial", "3 succeeded, 1 failed",
                   "`aws_iam_role.old` delete: succeeded", "`aws_instance.web` replace: succeeded",
                   "`aws_security_group.db` update: failed (boom)", run_id):
        assert needle in text, needle
    assert "aws_s3_bucket.logs" not in text  # a create is not an alert

    (event,) = [a.json() for a in world.pd.accepted()]
    assert world.pd.accepted()[0].path == "/v2/enqueue"
    assert event["routing_key"] == PD_KEY and event["event_action"] == "trigger"
    assert event["dedup_key"] == f"tfaudit-{run_id}"
    payload = event["payload"]
    assert payload["severity"] == "error" and payload["component"] == "prod"
    assert payload["summary"].startswith("tfaudit: apply partial in workspace prod by bob")
    assert payload["source"] == "ci-runner-1"
    assert {r["address"] for r in payload["custom_details"]["resources"]} == \
        {"aws_iam_role.old", "aws_instance.web", "aws_security_group.db"}
    assert sorted(payload["custom_details"]["record_ids"]) == sorted(
        a.record["id"] for a in noisy if a.record["type"] != "run.started"
        and a.record.get("resource", {}).get("address") != "aws_s3_bucket.logs")
    assert quiet  # (used above: its records were owed but filtered)
    for st in status(world.ledger, cfg.section("sink")):
        assert st.pending == 0


def test_alert_sink_failures_never_show_the_secret_url_or_key(world: World, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = world.config(ALERTS)
    world.slack.stop()
    world.pd.mode = "400"
    append_run(world.ledger, world.signer, CHANGES)
    report = world.deliver(cfg)
    assert report.pending == 8  # 4 alert records (3 resources + run.finished) for each sink
    shown = json.dumps(report.as_dict()) + report.warning() + json.dumps(
        [s.as_dict() for s in status(world.ledger, cfg.section("sink"))]) + capsys.readouterr().err
    assert "secretpart" not in shown and PD_KEY not in shown
    assert "HTTP 400" in shown and "cannot connect" in shown


def test_crash_mid_send_is_re_sent_with_the_same_idempotency_key(world: World) -> None:
    """The on-disk state a kill -9 leaves mid-send: rows marked attempting. The next delivery re-sends
    them with the same Idempotency-Key, so the receiver can drop the duplicate."""
    cfg = world.config(WEBHOOK)
    appended = append_run(world.ledger, world.signer, CHANGES[:1])
    from tfaudit.sinks.delivery import scan

    items = scan(world.ledger)
    with Outbox(world.ledger) as ob:
        ob.attempting("webhook.siem", items[:2])
    # the first record did arrive before the crash
    import urllib.request

    from tfaudit.sinks.webhook import signature_header
    req = urllib.request.Request(world.hook.url + "/ingest", data=items[0].line, method="POST", headers={
        "X-Tfaudit-Signature": signature_header(SECRET.encode(), items[0].line, int(time.time())),
        "Idempotency-Key": items[0].id, "Content-Type": "application/json"})
    urllib.request.urlopen(req, timeout=5).read()
    st = status(world.ledger, cfg.section("sink"))[0]
    assert st.in_doubt == 2 and st.pending == 3
    assert world.deliver(cfg).pending == 0
    assert [a.headers["Idempotency-Key"] for a in world.hook.accepted()] == [a.record["id"] for a in appended]
    dups = [a for a in world.hook.all() if a.duplicate]
    assert [a.headers["Idempotency-Key"] for a in dups] == [items[0].id]


def test_records_written_but_never_delivered_are_found_by_flush(world: World, run_tfaudit: Any) -> None:
    """A crash right after the ledger write leaves only the enrollment: `tfaudit flush` owes them all."""
    cfg = world.config(WEBHOOK)
    appended = append_run(world.ledger, world.signer, CHANGES)  # ... and the process died here
    assert cfg.section("sink")[0].id == "webhook.siem"
    env = {"HOOK_SECRET": SECRET}
    st = run_tfaudit("status", "--ledger", str(world.ledger), "--config", str(world.tmp / ".tfaudit.hcl"), env=env)
    assert st.returncode == 0 and "webhook.siem        6" in st.stdout and "6 pending" in st.stdout, st.output
    fl = run_tfaudit("flush", "--ledger", str(world.ledger), "--config", str(world.tmp / ".tfaudit.hcl"), env=env)
    assert fl.returncode == 0 and "webhook.siem: 6 delivered" in fl.stdout, fl.output
    assert [a.headers["Idempotency-Key"] for a in world.hook.accepted()] == [a.record["id"] for a in appended]


def test_backfill_sends_older_records_to_a_new_sink_without_repeats(world: World, run_tfaudit: Any) -> None:
    older = append_run(world.ledger, world.signer, CHANGES[:1])  # written before any sink existed
    cfg = world.config(WEBHOOK)
    newer = append_run(world.ledger, world.signer, CHANGES[:1])
    assert world.deliver(cfg).delivered == len(newer)
    args = ("--ledger", str(world.ledger), "--config", str(world.tmp / ".tfaudit.hcl"))
    fl = run_tfaudit("flush", "--backfill", *args, env={"HOOK_SECRET": SECRET})
    assert fl.returncode == 0 and "webhook.siem: 3 delivered" in fl.stdout, fl.output
    keys = [a.headers["Idempotency-Key"] for a in world.hook.all()]
    assert sorted(keys) == sorted(a.record["id"] for a in older + newer) and len(keys) == len(set(keys))
    st = status(world.ledger, cfg.section("sink"))[0]
    assert st.since_seq == 0 and not st.backfill and st.pending == 0 and st.delivered_total == 6


def test_flush_and_status_without_sinks_say_how_to_add_one(tmp_path: Path, run_tfaudit: Any) -> None:
    res = run_tfaudit("flush", cwd=tmp_path)
    assert res.returncode == 64 and "no sinks are configured" in res.stderr and "sink \"<kind>\"" in res.stderr
    (tmp_path / ".tfaudit.hcl").write_text('sink "stdout" "ci" {}\n')
    res = run_tfaudit("status", "--sink", "nope", cwd=tmp_path)
    assert res.returncode == 64 and "no sink named 'nope'" in res.stderr


def _readme_receiver() -> dict[str, Any]:
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    section = readme.split("### Webhook signatures", 1)[1]
    code = section.split("```python\n", 1)[1].split("```", 1)[0]
    ns: dict[str, Any] = {}
    exec(compile(code, "README.md receiver", "exec"), ns)  # noqa: S102 - the README's own example
    return ns


def test_the_readme_receiver_accepts_real_deliveries_and_rejects_replays_and_forgeries(world: World) -> None:
    cfg = world.config(WEBHOOK)
    append_run(world.ledger, world.signer, CHANGES[:1])
    assert world.deliver(cfg).pending == 0
    ns = _readme_receiver()
    check = ns["check_tfaudit_request"]
    secret = SECRET.encode()
    arrivals = world.hook.accepted()
    assert [check(a.headers, a.body, secret) for a in arrivals] == ["new"] * len(arrivals)
    first = arrivals[0]
    assert check(first.headers, first.body, secret) == "duplicate"  # replayed within the window
    assert check(first.headers, first.body + b" ", secret) == "invalid"  # altered body
    assert check(first.headers, first.body, b"other secret") == "invalid"
    assert check({k: v for k, v in first.headers.items() if k != "X-Tfaudit-Signature"}, first.body, secret) == "invalid"

    class Later:  # the same request replayed ten minutes later
        @staticmethod
        def time() -> float:
            return time.time() + 600

    ns["time"] = Later
    assert check(first.headers, first.body, secret) == "invalid"
