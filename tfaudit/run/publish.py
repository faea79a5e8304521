"""Publishing a run's records: durably into the ledger, then to the sinks, then a checkpoint."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from tfaudit.errors import LedgerError
from tfaudit.run.session import Session
from tfaudit.trail.store import EachAppender


def append(session: Session, recs: Iterable[Mapping[str, Any]], *, applied: bool) -> None:
    """Append to the ledger as one all-or-nothing batch (records made one at a time are sealed and
    written as they come where the store can); a failure after terraform applied says so in its hint."""
    store = session.store
    try:
        if isinstance(store, EachAppender):
            store.append_each(recs, session.signer)
        else:
            store.append(list(recs), session.signer)
    except LedgerError as e:
        if applied:
            e.hint = "terraform DID apply its changes; the ledger now lacks this run's records"
        raise


def publish(session: Session, recs: Iterable[Mapping[str, Any]], *, applied: bool = False) -> int:
    """Append records durably, then deliver them to the sinks and anchor a checkpoint.

    Returns an exit-code override (0 = none): 4 when delivery or anchoring failed and the
    config says `on_failure = "fail"`. The ledger write itself raises on failure.
    """
    if isinstance(recs, Sequence) and not recs:
        return 0
    append(session, recs, applied=applied)
    override = _deliver(session)
    return _anchor(session) or override


def _deliver(session: Session) -> int:
    """Send what the sinks are owed (this run's records and any backlog; see tfaudit.sinks);
    boto3 and the like are imported only when a sink needs them."""
    specs = session.config.section("sink")
    if not specs:
        return 0
    from tfaudit.sinks.delivery import deliver_after_run

    return deliver_after_run(session.outbox_base, specs, session.config.section("delivery"), session.env,
                             session.redactor, session.console.warn)


def _anchor(session: Session) -> int:
    """Sign a checkpoint of the ledger and store it apart from it, when configured
    (--checkpoints, TFAUDIT_CHECKPOINTS or a checkpoints block; see tfaudit.trail.checkpoints)."""
    from tfaudit.trail.checkpoints import anchor_after_run

    return anchor_after_run(session.store, session.signer, session.inv.checkpoints, session.env,
                            session.config, lambda m: session.console.warn(session.redactor.scrub(m)))
