"""Batches over overlapping mentors on PostgreSQL: no batch waits for another whole batch.

A batch applies the events of the mentors it can lock at once and leaves the
rest for a short second unit of work; every event is still applied exactly
once, with one award and one notification per channel.
"""

from __future__ import annotations

import random
import threading
import uuid
from datetime import date, timedelta
from typing import Any

import pytest
from sqlalchemy import Engine, func, select

from schema.tables import (
    earned_badges,
    mentor_activity_counts,
    notification_outbox,
    processed_events,
)
from tests.helpers import badge, saved_event, threshold, wait_for
from tests.integration.harness import apply, organisation
from worker.core.clock import SystemClock
from worker.db.locks import lock_mentors, try_lock_mentors
from worker.ingestion.batch import ingest_batch
from worker.ingestion.ingest import IncomingEvent, IngestResult, ingest_events

CLOCK = SystemClock()


def _events(org: uuid.UUID, mentors: list[uuid.UUID], per_mentor: int) -> list[dict[str, Any]]:
    return [
        saved_event(org=org, mentor=m, day=date(2026, 3, 2) + timedelta(days=i))
        for i in range(per_mentor)
        for m in mentors
    ]


def _counts(engine: Engine, mentors: list[uuid.UUID]) -> dict[uuid.UUID, int]:
    t = mentor_activity_counts
    with engine.connect() as conn:
        rows = conn.execute(
            select(t.c.peer_mentor_id, func.sum(t.c.activity_count))
            .where(t.c.peer_mentor_id.in_(mentors))
            .group_by(t.c.peer_mentor_id)
        )
        found = {m: int(n) for m, n in rows}
    return {m: found.get(m, 0) for m in mentors}


def _total(engine: Engine, table: Any) -> int:
    with engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(table)).scalar_one())


def test_try_lock_takes_the_free_mentors_and_leaves_the_held_ones(clean_db: Engine) -> None:
    held, free = uuid.uuid4(), [uuid.uuid4(), uuid.uuid4()]
    with clean_db.connect() as holder, holder.begin():
        lock_mentors(holder, [held])
        with clean_db.connect() as other, other.begin():
            assert try_lock_mentors(other, [held, *free]) == set(free)
        with clean_db.connect() as again, again.begin():
            # The free ones were released with the other transaction.
            assert try_lock_mentors(again, free) == set(free)
    with clean_db.connect() as after, after.begin():
        assert try_lock_mentors(after, [held]) == {held}


@pytest.mark.usefixtures("push_enabled")  # both channels' rows
def test_a_batch_applies_its_free_mentors_while_another_batch_holds_the_shared_ones(
    clean_db: Engine,
) -> None:
    engine = clean_db
    org = uuid.uuid4()
    apply(
        engine, {"organisations": [organisation(org)], "badges": [badge(org, "two", threshold(2))]}
    )
    shared = [uuid.uuid4() for _ in range(3)]
    only_a = [uuid.uuid4() for _ in range(3)]
    only_b = [uuid.uuid4() for _ in range(3)]
    batch_a = _events(org, shared + only_a, 2)
    redelivered = batch_a[0]  # an event of a shared mentor, in both batches
    batch_b = [*_events(org, shared + only_b, 2), redelivered]

    results: dict[str, IngestResult] = {}
    with engine.connect() as conn_a:
        with conn_a.begin():
            first_a = ingest_events(
                conn_a, [IncomingEvent(e) for e in batch_a], clock=CLOCK, wait_for_locks=False
            )
            assert first_a.deferred == []  # nobody else held its mentors
            # Batch A's transaction is open and holds the shared mentors' locks.
            worker_b = threading.Thread(
                target=lambda: results.setdefault(
                    "b", ingest_batch(engine, [IncomingEvent(e) for e in batch_b], clock=CLOCK)
                )
            )
            worker_b.start()
            # Batch B commits its own mentors' events without waiting for batch A...
            wait_for(
                lambda: _counts(engine, only_b),
                until=lambda c: set(c.values()) == {2},
                what="batch B's unshared mentors applied while batch A is open",
            )
            # ...and the shared mentors' events wait (batch A has not committed yet).
            assert _counts(engine, shared) == {m: 0 for m in shared}
            assert worker_b.is_alive()
        worker_b.join(timeout=120)
    assert not worker_b.is_alive()

    b = results["b"]
    assert b.received == len(batch_b)
    assert sorted(e.payload["event_id"] for e in b.deferred) == sorted(
        e["event_id"] for e in batch_b if uuid.UUID(e["activity"]["peer_mentor_id"]) in shared
    )
    assert b.duplicates == 1 and b.applied == len(batch_b) - 1
    assert _counts(engine, shared) == {m: 4 for m in shared}
    assert _counts(engine, only_a + only_b) == {m: 2 for m in only_a + only_b}
    unique_events = len(batch_a) + len(batch_b) - 1
    assert _total(engine, processed_events) == unique_events
    mentors = len(shared + only_a + only_b)
    assert _total(engine, earned_badges) == mentors
    assert _total(engine, notification_outbox) == 2 * mentors  # in-app and push, once each


@pytest.mark.usefixtures("push_enabled")  # both channels' rows
def test_concurrent_overlapping_batches_apply_every_event_exactly_once(clean_db: Engine) -> None:
    engine = clean_db
    org = uuid.uuid4()
    apply(
        engine,
        {"organisations": [organisation(org)], "badges": [badge(org, "three", threshold(3))]},
    )
    mentors = [uuid.uuid4() for _ in range(12)]
    events = _events(org, mentors, 10)
    rng = random.Random(16)
    # Four workers, each with batches over all mentors; every event is delivered
    # to two of them (a redelivery racing the first delivery).
    deliveries: list[list[dict[str, Any]]] = [[] for _ in range(4)]
    for e in events:
        for w in rng.sample(range(4), 2):
            deliveries[w].append(e)
    totals = IngestResult()
    errors: list[BaseException] = []
    lock = threading.Lock()

    def work(mine: list[dict[str, Any]]) -> None:
        try:
            for start in range(0, len(mine), 20):
                r = ingest_batch(
                    engine, [IncomingEvent(e) for e in mine[start : start + 20]], clock=CLOCK
                )
                with lock:
                    totals.merge(r)
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(d,)) for d in deliveries]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not errors and not any(t.is_alive() for t in threads)
    assert totals.received == 2 * len(events)
    assert totals.applied == len(events) and totals.duplicates == len(events)
    assert _counts(engine, mentors) == {m: 10 for m in mentors}
    assert _total(engine, processed_events) == len(events)
    assert _total(engine, earned_badges) == len(mentors)
    assert _total(engine, notification_outbox) == 2 * len(mentors)
