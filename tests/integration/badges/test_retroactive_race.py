"""Retroactive evaluation racing ingestion by a real worker: nothing missed, nothing doubled.

Three hundred mentors have four or five peer sessions; a new badge needs
five.  Around the configuration change and while the evaluation walks the
organisation in small chunks, the worker ingests one more session for every
one of them (published just before the change commits and between chunks,
so some arrive before their chunk, some after, some while it runs; the
evaluation and ingestion both try to award the five-session mentors) and the
first sessions of thirty brand-new mentors (in flight while the change
commits).  At the end exactly the mentors with five sessions hold the badge,
once each, with one notification each.
"""

from __future__ import annotations

import threading
import uuid
from datetime import date, timedelta
from typing import Any

from sqlalchemy import Engine, func, select

from schema.tables import earned_badges, notification_outbox
from tests.helpers import saved_event, threshold, wait_for
from tests.integration.harness import WorkerProcess, apply, organisation, processed_count
from worker.configuration import followup
from worker.configuration.apply import apply_configuration
from worker.configuration.schema import validate_configuration
from worker.core.clock import SystemClock
from worker.db.unit_of_work import unit_of_work
from worker.ingestion.ingest import IncomingEvent, ingest_events
from worker.tasks.publishing import publish

EXISTING, NEW, SESSIONS = 300, 30, 5


def _sessions(org: uuid.UUID, mentor: uuid.UUID, n: int, first: int = 0) -> list[dict[str, Any]]:
    return [
        saved_event(org=org, mentor=mentor, day=date(2026, 2, 2) + timedelta(days=first + i))
        for i in range(n)
    ]


def test_events_committed_during_the_evaluation_are_neither_missed_nor_doubled(
    clean_db: Engine, worker: WorkerProcess
) -> None:
    engine = clean_db
    org = uuid.uuid4()
    apply(engine, {"organisations": [organisation(org)]})
    existing = sorted(uuid.uuid4() for _ in range(EXISTING))
    newcomers = [uuid.uuid4() for _ in range(NEW)]
    with unit_of_work(engine) as conn:
        history = [
            e for i, m in enumerate(existing) for e in _sessions(org, m, SESSIONS - 1 + i % 2)
        ]
        ingest_events(conn, [IncomingEvent(e) for e in history], clock=SystemClock())

    badge = {"organisation_id": str(org), "code": "five", "name": "Five",
             "criteria": threshold(SESSIONS, "peer_session")}  # fmt: skip
    config = validate_configuration({"organisations": [organisation(org)], "badges": [badge]})
    one_more = [e for m in existing for e in _sessions(org, m, 1, first=SESSIONS)]
    slices = [one_more[i::12] for i in range(12)]
    published = slices.pop()
    first_events = [e for m in newcomers for e in _sessions(org, m, SESSIONS)]
    # In flight while the change commits: ingestions that may read the old definitions.
    newcomers_sent = threading.Thread(target=publish, args=([*published, *first_events],))
    newcomers_sent.start()
    with unit_of_work(engine) as conn:
        report = apply_configuration(conn, config, SystemClock())
    assert len(report.evaluate_definitions) == 1

    def between_chunks(_mentors: Any) -> None:
        if slices:
            batch = slices.pop()
            publish(batch)
            published.extend(batch)

    try:
        work = followup.plan(engine, report.evaluate_definitions)
        result = followup.run_plan(
            engine, work, clock=SystemClock(), chunk_size=10, progress=between_chunks
        )
    finally:
        newcomers_sent.join()
    while slices:
        between_chunks(None)
    ids = [uuid.UUID(e["event_id"]) for e in [*published, *first_events]]
    assert len(ids) == EXISTING + NEW * SESSIONS

    def processed() -> int:
        return processed_count(engine, ids)

    wait_for(processed, until=lambda n: n == len(ids), timeout=240, what="every event ingested")
    with engine.connect() as c:
        awards = c.execute(
            select(earned_badges.c.peer_mentor_id, earned_badges.c.id, earned_badges.c.award_source)
            .where(earned_badges.c.organisation_id == org)
        ).all()  # fmt: skip
        notified = list(
            c.scalars(
                select(notification_outbox.c.payload).where(
                    notification_outbox.c.organisation_id == org,
                    notification_outbox.c.channel == "in_app",
                )
            )
        )
    holders = [m for m, _, _ in awards]
    assert sorted(holders) == sorted([*existing, *newcomers])  # nobody missed, nobody twice
    assert sorted(p["earned_badge_id"] for p in notified) == sorted(str(i) for _, i, _ in awards)
    backfill = sum(1 for _, _, source in awards if source == "backfill")
    assert backfill == result.badges[0].newly_earned == len(result.awarded)


def test_the_evaluation_waits_for_transactions_running_when_it_starts(engine: Engine) -> None:
    """Until a transaction open at the start ends, the wait cannot finish; then it does."""
    from worker.db.quiesce import wait_for_running_transactions

    with engine.connect() as other:
        other.execute(select(func.count()).select_from(earned_badges))  # a transaction is open
        assert wait_for_running_transactions(engine, timeout=0.3) is False
        other.rollback()
        assert wait_for_running_transactions(engine, timeout=60) is True
