"""Delivery services and the relay on real PostgreSQL (no worker, no HTTP): states and races."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import Connection, Engine, func, select, update

from schema.migrate import upgrade
from schema.tables import earned_badges, notification_outbox, notifications
from tests.helpers import badge, saved_event, threshold
from tests.integration.harness import apply, organisation
from worker.badges.awards import get_earned_by_id, revoke
from worker.core.clock import SystemClock
from worker.db.engine import make_engine
from worker.ingestion.ingest import IncomingEvent, ingest_events
from worker.notifications.gateway import PushOutcome, PushResult
from worker.notifications.in_app import deliver_in_app, deliver_in_app_batch
from worker.notifications.items import Delivery, outbox_counts, requeue_dead
from worker.notifications.outbox import Notification, write_outbox
from worker.notifications.push import (
    NO_GATEWAY_REASON,
    REVOKED_REASON,
    deliver_push,
    skip_push_batch,
    take_lease,
)
from worker.notifications.relay import claim_undispatched
from worker.notifications.types import TIER_PROMOTED, Channel, OutboxRef, OutboxState

OSLO = ZoneInfo("Europe/Oslo")
NOW = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)

# Both channels' rows are written: this process writes push rows.
pytestmark = pytest.mark.usefixtures("push_enabled")


def award(
    c: Connection, *, language: str = "nb", backfill: bool = False
) -> dict[Channel, uuid.UUID]:
    """One new organisation, mentor and award; returns the outbox row id per channel."""
    org, mentor = uuid.uuid4(), uuid.uuid4()
    apply(
        c,
        {
            "organisations": [organisation(org, language=language)],
            "badges": [badge(org, "first-step", threshold(1))],
        },
    )
    result = ingest_events(
        c,
        [IncomingEvent(saved_event(org=org, mentor=mentor))],
        clock=SystemClock(),
        backfill=backfill,
    )
    assert len(result.awarded) == 1
    return outbox_ids(c, mentor)


def outbox_ids(c: Connection, mentor: uuid.UUID) -> dict[Channel, uuid.UUID]:
    rows = c.execute(
        select(notification_outbox.c.channel, notification_outbox.c.id).where(
            notification_outbox.c.peer_mentor_id == mentor
        )
    )
    return {Channel(channel): outbox_id for channel, outbox_id in rows}


def outbox_row(c: Connection | Engine, outbox_id: uuid.UUID) -> Any:
    query = select(notification_outbox).where(notification_outbox.c.id == outbox_id)
    if isinstance(c, Engine):
        with c.connect() as connection:
            return connection.execute(query).one()
    return c.execute(query).one()


def in_app_rows(c: Connection | Engine, outbox_id: uuid.UUID) -> list[Any]:
    query = select(notifications).where(notifications.c.outbox_id == outbox_id)
    if isinstance(c, Engine):
        with c.connect() as connection:
            return list(connection.execute(query))
    return list(c.execute(query))


class ScriptedSender:
    """A push sender answering from a script; counts calls by idempotency key."""

    def __init__(self, *outcomes: PushResult) -> None:
        self.outcomes = list(outcomes)
        self.calls: list[str] = []

    def __call__(self, message: Mapping[str, Any], key: str) -> PushResult:
        self.calls.append(key)
        return (
            self.outcomes.pop(0) if self.outcomes else PushResult(PushOutcome.SENT, status_code=200)
        )


SERVER_ERROR = PushResult(PushOutcome.RETRYABLE, "HTTP 500: boom", 500)
BAD_REQUEST = PushResult(PushOutcome.PERMANENT, "HTTP 400: unknown device", 400)


# --- in-app -----------------------------------------------------------------------------------


def test_in_app_inserts_one_rendered_notification_and_marks_the_row_sent(conn: Connection) -> None:
    ids = award(conn)
    earned_before = list(conn.execute(select(earned_badges)))

    assert deliver_in_app(conn, ids[Channel.IN_APP], now=NOW, tz=OSLO) is Delivery.DELIVERED
    assert deliver_in_app(conn, ids[Channel.IN_APP], now=NOW, tz=OSLO) is Delivery.ALREADY_DONE

    (row,) = in_app_rows(conn, ids[Channel.IN_APP])
    assert row.kind == "badge_earned"
    assert row.read_at is None
    assert row.payload["code"] == "first-step"
    assert row.payload["name"] == "First-Step"
    assert row.payload["earned_at"]
    assert row.payload["language"] == "nb"
    assert row.payload["title"] == "Nytt merke: First-Step"
    assert row.payload["body"].startswith("Gratulerer, du har fått et nytt merke: First-Step.")
    outbox = outbox_row(conn, ids[Channel.IN_APP])
    assert (outbox.state, outbox.attempts, outbox.delivered_at) == ("sent", 1, NOW)
    assert outbox.updated_at == NOW
    assert list(conn.execute(select(earned_badges))) == earned_before


def test_in_app_text_follows_the_organisation_language(conn: Connection) -> None:
    ids = award(conn, language="en")
    deliver_in_app(conn, ids[Channel.IN_APP], now=NOW, tz=OSLO)
    (row,) = in_app_rows(conn, ids[Channel.IN_APP])
    assert row.payload["language"] == "en"
    assert row.payload["title"] == "New badge: First-Step"


def test_tier_promotion_is_delivered_in_app(conn: Connection) -> None:
    org, mentor = uuid.uuid4(), uuid.uuid4()
    apply(conn, {"organisations": [organisation(org)]})
    payload = {"tier": "gold", "tier_level": 3, "award_period_id": str(uuid.uuid4()),
               "award_period_name": "2026", "assigned_at": NOW.isoformat()}  # fmt: skip
    refs = write_outbox(
        conn, [Notification(TIER_PROMOTED, f"tier:{mentor}", org, mentor, payload)], now=NOW
    )
    in_app = next(r.id for r in refs if r.channel is Channel.IN_APP)

    assert deliver_in_app(conn, in_app, now=NOW, tz=OSLO) is Delivery.DELIVERED
    (row,) = in_app_rows(conn, in_app)
    assert row.kind == TIER_PROMOTED
    assert row.payload["title"] == "Nytt nivå: Gull"
    assert row.payload["tier_level"] == 3


def test_delivery_tasks_ignore_ids_of_the_other_channel_or_unknown(conn: Connection) -> None:
    ids = award(conn)
    assert deliver_in_app(conn, ids[Channel.PUSH], now=NOW, tz=OSLO) is Delivery.MISSING
    assert deliver_in_app(conn, uuid.uuid4(), now=NOW, tz=OSLO) is Delivery.MISSING
    assert in_app_rows(conn, ids[Channel.PUSH]) == []


def test_a_batch_of_in_app_rows_is_delivered_once_each_with_an_outcome_per_id(
    conn: Connection,
) -> None:
    first, second, done = award(conn), award(conn, language="en"), award(conn)
    assert deliver_in_app(conn, done[Channel.IN_APP], now=NOW, tz=OSLO) is Delivery.DELIVERED
    unknown = uuid.uuid4()
    batch = [
        first[Channel.IN_APP],
        second[Channel.IN_APP],
        first[Channel.IN_APP],  # the same id twice in one message
        done[Channel.IN_APP],
        first[Channel.PUSH],
        unknown,
    ]

    outcomes = deliver_in_app_batch(conn, batch, now=NOW, tz=OSLO)

    assert outcomes == {
        first[Channel.IN_APP]: Delivery.DELIVERED,
        second[Channel.IN_APP]: Delivery.DELIVERED,
        done[Channel.IN_APP]: Delivery.ALREADY_DONE,
        first[Channel.PUSH]: Delivery.MISSING,
        unknown: Delivery.MISSING,
    }
    for ids, title in ((first, "Nytt merke: First-Step"), (second, "New badge: First-Step")):
        (row,) = in_app_rows(conn, ids[Channel.IN_APP])
        assert row.payload["title"] == title
        outbox = outbox_row(conn, ids[Channel.IN_APP])
        assert (outbox.state, outbox.attempts, outbox.delivered_at) == ("sent", 1, NOW)
    assert outbox_row(conn, done[Channel.IN_APP]).attempts == 1
    assert outbox_row(conn, first[Channel.PUSH]).state == "pending"
    # Delivered again (a redelivered message): nothing new.
    again = deliver_in_app_batch(conn, batch[:2], now=NOW, tz=OSLO)
    assert set(again.values()) == {Delivery.ALREADY_DONE}
    assert len(in_app_rows(conn, first[Channel.IN_APP])) == 1


def test_an_unknown_kind_in_a_batch_is_dead_without_failing_the_others(conn: Connection) -> None:
    good = award(conn)
    org, mentor = uuid.uuid4(), uuid.uuid4()
    apply(conn, {"organisations": [organisation(org)]})
    (strange,) = [
        r.id
        for r in write_outbox(conn, [Notification("mystery", "m:1", org, mentor, {})], now=NOW)
        if r.channel is Channel.IN_APP
    ]

    outcomes = deliver_in_app_batch(conn, [strange, good[Channel.IN_APP]], now=NOW, tz=OSLO)

    assert outcomes == {strange: Delivery.DEAD, good[Channel.IN_APP]: Delivery.DELIVERED}
    dead = outbox_row(conn, strange)
    assert (dead.state, dead.attempts) == ("dead", 1) and "mystery" in dead.last_error
    assert in_app_rows(conn, strange) == []


def test_skip_push_batch_skips_open_rows_in_one_go(conn: Connection) -> None:
    first, second = award(conn), award(conn)
    assert (
        skip_push_batch(conn, [second[Channel.PUSH]], now=NOW, reason="earlier")[
            second[Channel.PUSH]
        ]
        is Delivery.SKIPPED
    )
    batch = [first[Channel.PUSH], second[Channel.PUSH], first[Channel.IN_APP]]

    outcomes = skip_push_batch(conn, batch, now=NOW, reason=NO_GATEWAY_REASON)

    assert outcomes == {
        first[Channel.PUSH]: Delivery.SKIPPED,
        second[Channel.PUSH]: Delivery.ALREADY_DONE,
        first[Channel.IN_APP]: Delivery.MISSING,
    }
    assert outbox_row(conn, first[Channel.PUSH]).last_error == NO_GATEWAY_REASON
    assert outbox_row(conn, second[Channel.PUSH]).last_error == "earlier"
    assert outbox_row(conn, first[Channel.IN_APP]).state == "pending"


def test_same_in_app_row_delivered_concurrently_inserts_one_notification(clean_db: Engine) -> None:
    with clean_db.begin() as c:
        in_app = award(c)[Channel.IN_APP]
    barrier = threading.Barrier(4)
    outcomes: list[Delivery] = []

    def deliver() -> None:
        barrier.wait()
        with clean_db.begin() as c:
            outcomes.append(deliver_in_app(c, in_app, now=SystemClock().now(), tz=OSLO))

    threads = [threading.Thread(target=deliver) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    assert sorted(outcomes) == sorted([Delivery.DELIVERED] + [Delivery.ALREADY_DONE] * 3)
    assert len(in_app_rows(clean_db, in_app)) == 1
    assert outbox_row(clean_db, in_app).attempts == 1


# --- push -------------------------------------------------------------------------------------


def push(
    engine: Engine, outbox_id: uuid.UUID, sender: ScriptedSender, max_attempts: int = 3
) -> Delivery:
    return deliver_push(
        engine, outbox_id, send=sender, clock=SystemClock(), tz=OSLO, max_attempts=max_attempts
    ).delivery


def test_push_failures_are_counted_then_sent(clean_db: Engine) -> None:
    with clean_db.begin() as c:
        push_id = award(c)[Channel.PUSH]
    sender = ScriptedSender(SERVER_ERROR, SERVER_ERROR)

    assert push(clean_db, push_id, sender) is Delivery.RETRY
    failed = outbox_row(clean_db, push_id)
    assert (failed.state, failed.attempts, failed.last_error) == ("failed", 1, "HTTP 500: boom")
    assert failed.delivered_at is None
    assert push(clean_db, push_id, sender) is Delivery.RETRY
    assert push(clean_db, push_id, sender) is Delivery.DELIVERED
    assert push(clean_db, push_id, sender) is Delivery.ALREADY_DONE

    sent = outbox_row(clean_db, push_id)
    assert (sent.state, sent.attempts) == ("sent", 3)
    assert sent.delivered_at is not None and sent.delivered_at >= failed.updated_at
    assert sender.calls == [str(push_id)] * 3


def test_push_is_dead_after_the_last_attempt(clean_db: Engine) -> None:
    with clean_db.begin() as c:
        push_id = award(c)[Channel.PUSH]
    sender = ScriptedSender(*[SERVER_ERROR] * 5)
    outcomes = [push(clean_db, push_id, sender, max_attempts=2) for _ in range(3)]
    assert outcomes == [Delivery.RETRY, Delivery.DEAD, Delivery.ALREADY_DONE]
    dead = outbox_row(clean_db, push_id)
    assert (dead.state, dead.attempts, dead.last_error) == ("dead", 2, "HTTP 500: boom")
    assert len(sender.calls) == 2


def test_permanent_push_error_is_dead_at_once(clean_db: Engine) -> None:
    with clean_db.begin() as c:
        push_id = award(c)[Channel.PUSH]
    assert push(clean_db, push_id, ScriptedSender(BAD_REQUEST), max_attempts=5) is Delivery.DEAD
    dead = outbox_row(clean_db, push_id)
    assert (dead.state, dead.attempts, dead.last_error) == ("dead", 1, "HTTP 400: unknown device")


def test_badge_revoked_before_delivery_is_not_pushed(clean_db: Engine) -> None:
    with clean_db.begin() as c:
        ids = award(c)
        earned = c.execute(select(earned_badges.c.id)).scalar_one()
        found = get_earned_by_id(c, earned)
        assert found is not None
        revoke(c, found, reason="criteria no longer met", actor="test", now=NOW)
    sender = ScriptedSender()
    assert push(clean_db, ids[Channel.PUSH], sender) is Delivery.SKIPPED
    assert sender.calls == []
    skipped = outbox_row(clean_db, ids[Channel.PUSH])
    assert (skipped.state, skipped.last_error, skipped.attempts) == ("skipped", REVOKED_REASON, 0)


def test_concurrent_push_of_one_row_sends_once(clean_db: Engine) -> None:
    with clean_db.begin() as c:
        push_id = award(c)[Channel.PUSH]
    inside = threading.Event()
    release = threading.Event()
    calls: list[str] = []

    def slow_sender(message: Mapping[str, Any], key: str) -> PushResult:
        calls.append(key)
        inside.set()
        assert release.wait(30)
        return PushResult(PushOutcome.SENT, status_code=200)

    first: list[Delivery] = []
    holder = threading.Thread(target=lambda: first.append(
        deliver_push(clean_db, push_id, send=slow_sender, clock=SystemClock(), tz=OSLO, max_attempts=3).delivery
    ))  # fmt: skip
    holder.start()
    assert inside.wait(30)
    # While the first delivery is waiting for the gateway, a duplicate leaves.
    assert push(clean_db, push_id, ScriptedSender()) is Delivery.IN_FLIGHT
    release.set()
    holder.join()
    assert first == [Delivery.DELIVERED]
    assert push(clean_db, push_id, ScriptedSender()) is Delivery.ALREADY_DONE
    assert calls == [str(push_id)]
    assert outbox_row(clean_db, push_id).attempts == 1


def test_a_crashed_senders_lease_blocks_until_it_runs_out(clean_db: Engine) -> None:
    """A sender that died mid-call leaves its lease; once it lapses another sender takes over."""
    with clean_db.begin() as c:
        push_id = award(c)[Channel.PUSH]
    with clean_db.begin() as c:
        assert take_lease(c, push_id, uuid.uuid4(), lease_s=3600)  # ... and then it crashed
    sender = ScriptedSender()
    assert push(clean_db, push_id, sender) is Delivery.IN_FLIGHT
    assert sender.calls == []
    with clean_db.begin() as c:  # an hour later
        c.execute(
            update(notification_outbox)
            .where(notification_outbox.c.id == push_id)
            .values(claimed_until=func.now() - timedelta(seconds=1))
        )
    assert push(clean_db, push_id, sender) is Delivery.DELIVERED
    assert sender.calls == [str(push_id)]
    row = outbox_row(clean_db, push_id)
    assert (row.state, row.claimed_by, row.claimed_until) == ("sent", None, None)


def test_skip_push_without_gateway_keeps_final_rows(conn: Connection) -> None:
    ids = award(conn)
    assert (
        skip_push_batch(conn, [ids[Channel.PUSH]], now=NOW, reason=NO_GATEWAY_REASON)[
            ids[Channel.PUSH]
        ]
        is Delivery.SKIPPED
    )
    assert (
        skip_push_batch(conn, [ids[Channel.PUSH]], now=NOW, reason="again")[ids[Channel.PUSH]]
        is Delivery.ALREADY_DONE
    )
    row = outbox_row(conn, ids[Channel.PUSH])
    assert (row.state, row.last_error, row.updated_at) == ("skipped", NO_GATEWAY_REASON, NOW)
    assert (
        skip_push_batch(conn, [ids[Channel.IN_APP]], now=NOW, reason="x")[ids[Channel.IN_APP]]
        is Delivery.MISSING
    )


def test_backfill_award_writes_in_app_only(conn: Connection) -> None:
    ids = award(conn, backfill=True)
    push_row = outbox_row(conn, ids[Channel.PUSH])
    assert push_row.state == "skipped" and push_row.backfill
    assert deliver_in_app(conn, ids[Channel.IN_APP], now=NOW, tz=OSLO) is Delivery.DELIVERED


# --- status, dead letters, relay ----------------------------------------------------------------


def test_status_counts_and_requeue_dead(conn: Connection) -> None:
    before = outbox_counts(conn)
    ids = award(conn)
    conn.execute(
        update(notification_outbox)
        .where(notification_outbox.c.id == ids[Channel.PUSH])
        .values(state="dead", attempts=6, last_error="timeout: ReadTimeout")
    )
    counts = outbox_counts(conn)
    assert set(counts) == {"in_app", "push"}
    assert counts["push"]["dead"] == before["push"]["dead"] + 1
    assert counts["in_app"]["pending"] == before["in_app"]["pending"] + 1
    assert set(counts["push"]) == {s.value for s in OutboxState}  # every state is listed

    refs = requeue_dead(conn, now=NOW)
    assert OutboxRef(ids[Channel.PUSH], Channel.PUSH) in refs
    row = outbox_row(conn, ids[Channel.PUSH])
    assert (row.state, row.attempts, row.dispatched_at) == ("pending", 0, NOW)
    assert row.last_error == "timeout: ReadTimeout"  # kept for the record
    assert requeue_dead(conn, now=NOW) == []


def _relay(
    c: Connection, now: datetime, grace: float = 60, only: Mapping[Channel, uuid.UUID] | None = None
) -> list[OutboxRef]:
    refs = claim_undispatched(c, now=now, grace_period_s=grace, retry_overdue_s=600 + grace)
    return refs if only is None else [r for r in refs if r.id in only.values()]


def test_relay_claims_only_rows_past_the_grace_period(conn: Connection) -> None:
    ids = award(conn)
    created = outbox_row(conn, ids[Channel.IN_APP]).created_at
    assert _relay(conn, created + timedelta(seconds=30), only=ids) == []  # still within grace

    later = created + timedelta(seconds=61)
    claimed = _relay(conn, later, only=ids)
    assert sorted(claimed) == sorted(OutboxRef(i, ch) for ch, i in ids.items())
    assert outbox_row(conn, ids[Channel.PUSH]).dispatched_at == later
    assert _relay(conn, later + timedelta(seconds=30), only=ids) == []  # just re-sent
    assert len(_relay(conn, later + timedelta(seconds=61), only=ids)) == 2  # undelivered: again


def test_relay_skips_final_rows_and_picks_overdue_retries(conn: Connection) -> None:
    ids = award(conn)
    created = outbox_row(conn, ids[Channel.IN_APP]).created_at
    conn.execute(
        update(notification_outbox)
        .where(notification_outbox.c.id == ids[Channel.IN_APP])
        .values(state="sent")
    )
    conn.execute(
        update(notification_outbox)
        .where(notification_outbox.c.id == ids[Channel.PUSH])
        .values(state="failed", updated_at=created, dispatched_at=created)
    )
    assert _relay(conn, created + timedelta(seconds=300), only=ids) == []  # retry not overdue
    overdue = _relay(conn, created + timedelta(seconds=700), only=ids)
    assert overdue == [OutboxRef(ids[Channel.PUSH], Channel.PUSH)]


def test_two_relays_claim_disjoint_rows(clean_db: Engine) -> None:
    mine: set[uuid.UUID] = set()
    with clean_db.begin() as c:
        for _ in range(3):
            mine |= set(award(c).values())
    later = SystemClock().now() + timedelta(minutes=5)
    with clean_db.connect() as first, clean_db.connect() as second, first.begin():
        claimed_first = claim_undispatched(
            first, now=later, grace_period_s=60, retry_overdue_s=660, limit=4
        )
        with second.begin():  # runs while the first holds its row locks: skips, never waits
            claimed_second = _relay(second, later)
    first_ids, second_ids = {r.id for r in claimed_first}, {r.id for r in claimed_second}
    assert len(first_ids) == 4 and second_ids
    assert not first_ids & second_ids
    assert mine <= first_ids | second_ids


def test_relay_works_on_sqlite(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'relay.sqlite3'}")
    try:
        upgrade(engine)
        org, mentor = uuid.uuid4(), uuid.uuid4()
        with engine.begin() as c:
            refs = write_outbox(
                c, [Notification("badge_earned", "k:1", org, mentor, {"name": "x"})], now=NOW
            )
        with engine.begin() as c:
            claimed = _relay(c, NOW + timedelta(minutes=2))
            counts = outbox_counts(c)
        assert sorted(claimed) == sorted(refs)
        assert counts["push"]["pending"] == 1
        with engine.begin() as c:
            assert _relay(c, NOW + timedelta(minutes=2)) == []
            count = c.execute(select(func.count()).select_from(notification_outbox)).scalar_one()
        assert count == 2
    finally:
        engine.dispose()
