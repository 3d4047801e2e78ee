"""Delivering outbox rows on the push channel: a lease, the gateway call, the outcome (SQL).

One delivery at a time per outbox row, guarded by a *lease* on the row
(``claimed_by``, ``claimed_until``) taken in the short transaction before the
HTTP call and cleared in the one after it; a duplicate task that finds the
lease taken leaves (the holder finishes or schedules its own retry).  The
lease is plain row data, so it works through a transaction-mode pooler (a
session advisory lock would not: the pooler hands each transaction any server
connection), no transaction or row lock is held while waiting for the
gateway, and ingestion (which stamps ``dispatched_at`` on the same rows) never
waits for a slow gateway.  A crashed holder's lease runs out after the longest
possible gateway call; the relay then re-sends the row.  A send repeated after
a crash carries the same ``Idempotency-Key``, which the gateway de-duplicates.

Nothing here touches ``earned_badges`` except to read whether an award still
exists: a notification failure never alters an award.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta, tzinfo
from typing import Any
from uuid import UUID, uuid4

from sqlalchemy import Connection, Engine, func, or_, select, update

from schema.tables import earned_badges, notification_outbox
from worker.core.clock import Clock
from worker.db.engine import is_postgres
from worker.db.unit_of_work import unit_of_work
from worker.notifications.gateway import PushOutcome, PushResult
from worker.notifications.items import (
    FINAL_STATES,
    Delivery,
    OutboxItem,
    load_item,
    load_items,
    set_state,
    set_states,
)
from worker.notifications.texts import RenderedMessage, UnknownKind, render
from worker.notifications.types import BADGE_EARNED, Channel, OutboxState

REVOKED_REASON = "badge revoked before delivery: not pushed"
NO_GATEWAY_REASON = "no push gateway configured (PUSH_GATEWAY_URL unset)"


@dataclass(frozen=True)
class PushAttempt:
    """The outcome of one push task: what happened, and what a retry should know."""

    delivery: Delivery
    attempts: int = 0
    error: str | None = None
    retry_after_s: float | None = None


#: Sends one push message; ``idempotency_key`` is the outbox id.
PushSender = Callable[[Mapping[str, Any], str], PushResult]


def push_message(item: OutboxItem, message: RenderedMessage) -> dict[str, Any]:
    """The JSON body POSTed to the push gateway."""
    return {
        "id": str(item.id),
        "kind": item.kind,
        "peer_mentor_id": str(item.peer_mentor_id),
        "organisation_id": str(item.organisation_id),
        "language": message.language,
        "title": message.title,
        "body": message.body,
        "data": item.payload,
    }


#: How long a push lease holds when the caller does not say: longer than any
#: gateway call with the default timeouts (3 s connect + 10 s read) plus slack.
DEFAULT_LEASE_S = 60.0


def deliver_push(
    engine: Engine,
    outbox_id: UUID,
    *,
    send: PushSender,
    clock: Clock,
    tz: tzinfo,
    max_attempts: int,
    lease_s: float = DEFAULT_LEASE_S,
) -> PushAttempt:
    """One push attempt for one outbox row: claim, send, record (see module docstring).

    Two short transactions around the HTTP call; the lease keeps a duplicate
    task from sending at the same time.  ``lease_s`` must exceed the longest
    gateway call (connect plus read timeout).
    """
    holder = uuid4()
    with unit_of_work(engine) as conn:
        if not take_lease(conn, outbox_id, holder, lease_s=lease_s):
            return PushAttempt(Delivery.IN_FLIGHT)
        claimed = claim_push(conn, outbox_id, now=clock.now(), tz=tz)
        if not isinstance(claimed, tuple):
            release_lease(conn, outbox_id, holder)
            return PushAttempt(claimed)
    item, message = claimed
    try:
        result = send(push_message(item, message), str(item.id))
    except BaseException:
        with unit_of_work(engine) as conn:
            release_lease(conn, outbox_id, holder)
        raise
    with unit_of_work(engine) as conn:
        release_lease(conn, outbox_id, holder)
        return record_push_result(
            conn, outbox_id, result, now=clock.now(), max_attempts=max_attempts
        )


def take_lease(conn: Connection, outbox_id: UUID, holder: UUID, *, lease_s: float) -> bool:
    """Claim the right to send ``outbox_id`` for ``lease_s`` seconds; False if another holds it.

    One ``UPDATE … WHERE the lease is free RETURNING``: a concurrent claimer
    waits for this row lock, re-reads the row and finds the lease taken.  The
    database clock decides, so workers' clock differences do not matter.  True
    as well when there is no such row (the caller then reports it missing),
    and always on SQLite, whose embedded default runs a single worker process.
    """
    if not is_postgres(conn):
        return True
    t = notification_outbox.c
    taken = conn.execute(
        update(notification_outbox)
        .where(t.id == outbox_id, or_(t.claimed_until.is_(None), t.claimed_until < func.now()))
        .values(claimed_by=holder, claimed_until=func.now() + timedelta(seconds=lease_s))
        .returning(t.id)
    ).first()
    if taken is not None:
        return True
    return conn.execute(select(t.id).where(t.id == outbox_id)).first() is None


def release_lease(conn: Connection, outbox_id: UUID, holder: UUID) -> None:
    """End ``holder``'s lease on ``outbox_id`` (a no-op when it ran out and was taken since)."""
    if not is_postgres(conn):
        return
    t = notification_outbox.c
    conn.execute(
        update(notification_outbox)
        .where(t.id == outbox_id, t.claimed_by == holder)
        .values(claimed_by=None, claimed_until=None)
    )


def claim_push(
    conn: Connection, outbox_id: UUID, *, now: datetime, tz: tzinfo
) -> Delivery | tuple[OutboxItem, RenderedMessage]:
    """Check a push row is still to be sent; returns what to send, or why not."""
    item = load_item(conn, outbox_id)
    if item is None or item.channel is not Channel.PUSH:
        return Delivery.MISSING
    if item.state in FINAL_STATES:
        return Delivery.ALREADY_DONE
    if award_revoked(conn, item):
        set_state(conn, item, OutboxState.SKIPPED, now=now, error=REVOKED_REASON)
        return Delivery.SKIPPED
    try:
        message = render(item.kind, item.payload, language=item.language, tz=tz)
    except UnknownKind as exc:
        set_state(conn, item, OutboxState.DEAD, now=now, error=str(exc))
        return Delivery.DEAD
    return item, message


def record_push_result(
    conn: Connection, outbox_id: UUID, result: PushResult, *, now: datetime, max_attempts: int
) -> PushAttempt:
    """Write one attempt's outcome: sent, failed (retry follows) or dead."""
    item = load_item(conn, outbox_id)
    if item is None:
        return PushAttempt(Delivery.MISSING)
    if item.state in FINAL_STATES:  # e.g. skipped by an operator meanwhile
        return PushAttempt(Delivery.ALREADY_DONE, item.attempts)
    attempts = item.attempts + 1
    if result.outcome is PushOutcome.SENT:
        set_state(conn, item, OutboxState.SENT, now=now, attempted=True)
        return PushAttempt(Delivery.DELIVERED, attempts)
    if result.outcome is PushOutcome.RETRYABLE and attempts < max_attempts:
        set_state(conn, item, OutboxState.FAILED, now=now, error=result.error, attempted=True)
        return PushAttempt(Delivery.RETRY, attempts, result.error, result.retry_after_s)
    set_state(conn, item, OutboxState.DEAD, now=now, error=result.error, attempted=True)
    return PushAttempt(Delivery.DEAD, attempts, result.error)


def skip_push_batch(
    conn: Connection, outbox_ids: Collection[UUID], *, now: datetime, reason: str
) -> dict[UUID, Delivery]:
    """Mark push rows skipped with ``reason`` (one update), except those already at an end."""
    items = load_items(conn, outbox_ids)
    outcomes: dict[UUID, Delivery] = {}
    for outbox_id in outbox_ids:
        item = items.get(outbox_id)
        if outbox_id in outcomes:
            continue
        if item is None or item.channel is not Channel.PUSH:
            outcomes[outbox_id] = Delivery.MISSING
        elif item.state in FINAL_STATES:
            outcomes[outbox_id] = Delivery.ALREADY_DONE
        else:
            outcomes[outbox_id] = Delivery.SKIPPED
    skipped = [i for i, outcome in outcomes.items() if outcome is Delivery.SKIPPED]
    if skipped:
        set_states(conn, skipped, OutboxState.SKIPPED, now=now, error=reason)
    return outcomes


def award_revoked(conn: Connection, item: OutboxItem) -> bool:
    """True when a badge_earned row's award no longer exists (revoked since)."""
    if item.kind != BADGE_EARNED or "earned_badge_id" not in item.payload:
        return False
    earned_id = UUID(str(item.payload["earned_badge_id"]))
    found = conn.execute(select(earned_badges.c.id).where(earned_badges.c.id == earned_id))
    return found.first() is None
