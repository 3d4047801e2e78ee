"""The pipeline through real Celery worker processes on Redis and PostgreSQL."""

from __future__ import annotations

import random
import threading
import uuid
from datetime import date, timedelta
from typing import Any

from sqlalchemy import Engine, func, select

from schema.tables import (
    badge_definitions,
    daily_activity_counts,
    earned_badges,
    quarantined_events,
)
from tests.helpers import BASE_TIME, badge, event_variant, saved_event, streak, threshold, wait_for
from tests.integration.harness import (
    WorkerProcess,
    apply,
    lifetime_total,
    organisation,
    processed_count,
)
from worker.app import app
from worker.tasks.publishing import publish


def test_duplicates_through_the_worker_count_once(engine: Engine, worker: WorkerProcess) -> None:
    org, mentor = uuid.uuid4(), uuid.uuid4()
    apply(
        engine,
        {"organisations": [organisation(org)], "badges": [badge(org, "first", threshold(1))]},
    )
    events = [
        saved_event(org=org, mentor=mentor, day=date(2026, 3, 2) + timedelta(days=i))
        for i in range(3)
    ]
    copies = [events[0]] * 2 + [events[1]] * 3 + [events[2]] * 10
    random.Random(1).shuffle(copies)
    publish(copies)
    ids = [e["event_id"] for e in events]
    wait_for(lambda: processed_count(engine, ids), until=lambda n: n == 3, what="three events")
    # The redelivered copies may still be in flight; wait until the queue is drained.
    wait_for(lambda: _queue_length("activity_events"), until=lambda n: n == 0, what="queue drained")
    assert lifetime_total(engine, mentor) == 3
    with engine.connect() as c:
        assert c.execute(select(func.count()).select_from(earned_badges).where(
            earned_badges.c.peer_mentor_id == mentor)).scalar_one() == 1  # fmt: skip


def _queue_length(queue: str) -> int:
    with app.connection_for_write() as connection:
        return int(connection.default_channel.client.llen(queue))


def _malformed(org: uuid.UUID, mentor: uuid.UUID) -> dict[str, Any]:
    def variant(**changes: Any) -> dict[str, Any]:
        return event_variant(org, mentor, **changes)

    missing = saved_event(org=org, mentor=mentor)
    del missing["activity"]["activity_date"]
    return {
        "schema version": variant(schema_version=7),
        "unknown field": variant(priority="high"),
        "bad event id": variant(event_id="abc"),
        "bad mentor id": variant(a_peer_mentor_id="mentor-1"),
        "bad date": variant(a_activity_date="02.03.2026"),
        "missing date": missing,
        "naive timestamp": variant(occurred_at="2026-03-02T10:00:00"),
        "unknown event type": variant(event_type="activity.liked"),
        "bad activity type": variant(a_activity_type="PeerSession"),
        "training without course": variant(a_activity_type="training_completed"),
        "unknown organisation": saved_event(org=uuid.uuid4(), mentor=mentor),
        "not an object": ["just", "a", "list"],
    }


def test_malformed_events_are_quarantined_while_good_ones_flow(
    engine: Engine, worker: WorkerProcess
) -> None:
    org, mentor = uuid.uuid4(), uuid.uuid4()
    apply(engine, {"organisations": [organisation(org)]})
    bad = _malformed(org, mentor)
    good = [
        saved_event(org=org, mentor=mentor, day=date(2026, 4, 1) + timedelta(days=i))
        for i in range(len(bad))
    ]
    task_ids: dict[str, str] = {}
    for (kind, payload), ok in zip(bad.items(), good, strict=True):
        result = app.send_task(
            "badges.ingest_activity", kwargs={"event": payload}, queue="activity_events"
        )
        task_ids[result.id] = kind
        publish([ok])

    def quarantined() -> dict[str, str]:
        with engine.connect() as c:
            rows = c.execute(
                select(quarantined_events.c.task_id, quarantined_events.c.reason, quarantined_events.c.raw_payload)
                .where(quarantined_events.c.task_id.in_(list(task_ids)))
            ).all()  # fmt: skip
        return {task_ids[r.task_id]: r.reason for r in rows}

    reasons = wait_for(
        quarantined, until=lambda r: len(r) == len(bad), what="all malformed events quarantined"
    )
    expected_fragments = {
        "schema version": "unsupported schema version 7",
        "unknown field": "priority: Extra inputs are not permitted",
        "bad event id": "event_id: Input should be a valid UUID",
        "bad mentor id": "activity.peer_mentor_id",
        "bad date": "activity.activity_date",
        "missing date": "activity.activity_date: Field required",
        "naive timestamp": "occurred_at: Input should have timezone info",
        "unknown event type": "does not match any of the expected tags",
        "bad activity type": "activity.activity_type: String should match pattern",
        "training without course": "needs a course_id",
        "unknown organisation": "unknown organisation",
        "not an object": "must be a JSON object",
    }
    for kind, fragment in expected_fragments.items():
        assert fragment in reasons[kind], (kind, reasons[kind])
    wait_for(
        lambda: lifetime_total(engine, mentor), until=lambda n: n == len(good), what="good events"
    )


def test_concurrent_race_on_one_mentor_awards_exactly_once(
    clean_db: Engine, worker: WorkerProcess
) -> None:
    engine = clean_db
    org, mentor = uuid.uuid4(), uuid.uuid4()
    thresholds = (1, 25, 50, 100, 150, 200)
    apply(
        engine,
        {
            "organisations": [organisation(org)],
            "badges": [badge(org, f"n{n}", threshold(n, "peer_session")) for n in thresholds]
            + [badge(org, "weekly", streak("week", 3))],
        },
    )
    activities = [uuid.uuid4() for _ in range(200)]
    day0 = date(2026, 1, 5)
    first_saves = [
        saved_event(org=org, mentor=mentor, activity_id=a, day=day0 + timedelta(days=i % 60))
        for i, a in enumerate(activities)
    ]
    # Rapid double-saves: the same activity saved again a moment later (a new event).
    double_saves = [
        saved_event(org=org, mentor=mentor, activity_id=a, day=day0 + timedelta(days=(i % 60) + 1),
                    occurred_at=BASE_TIME + timedelta(seconds=1))
        for i, a in enumerate(activities[:80])
    ]  # fmt: skip
    redelivered = [dict(e) for e in first_saves[::4]]
    messages = first_saves + double_saves + redelivered
    random.Random(7).shuffle(messages)

    extra = WorkerProcess(concurrency=4)  # with the session worker: six processes racing
    try:
        threads = [threading.Thread(target=publish, args=(messages[i::4],)) for i in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        unique = list({e["event_id"] for e in messages})
        wait_for(lambda: processed_count(engine, unique), until=lambda n: n == len(unique),
                 timeout=180, what="all events processed")  # fmt: skip
        wait_for(
            lambda: _queue_length("activity_events"), until=lambda n: n == 0, what="queue drained"
        )
    finally:
        extra.stop()
    assert "ready." in extra.log()

    with engine.connect() as c:
        per_definition = c.execute(
            select(badge_definitions.c.code, func.count(earned_badges.c.id))
            .join(earned_badges, earned_badges.c.badge_definition_id == badge_definitions.c.id)
            .where(earned_badges.c.peer_mentor_id == mentor)
            .group_by(badge_definitions.c.code)
        ).all()
        daily = c.execute(
            select(func.sum(daily_activity_counts.c.activity_count)).where(
                daily_activity_counts.c.peer_mentor_id == mentor
            )
        ).scalar_one()
    assert dict(per_definition) == {**{f"n{n}": 1 for n in thresholds}, "weekly": 1}
    assert lifetime_total(engine, mentor) == 200
    assert daily == 200


def test_a_database_outage_is_retried_not_quarantined(engine: Engine) -> None:
    """A worker that cannot reach its database retries with backoff; nothing is lost."""
    org, mentor = uuid.uuid4(), uuid.uuid4()
    apply(engine, {"organisations": [organisation(org)]})
    queue = f"outage-{uuid.uuid4().hex[:8]}"
    url = engine.url.set(database="badges_test_does_not_exist").render_as_string(
        hide_password=False
    )
    # A short retry budget: the worker retries in place, then re-publishes the event.
    broken = WorkerProcess(
        concurrency=1, queues=queue, env={"DATABASE_URL": url, "MAX_RETRY_DELAY_S": "4"}
    )
    event = saved_event(org=org, mentor=mentor)
    try:
        result = app.send_task("badges.ingest_activity", kwargs={"event": event}, queue=queue)
        wait_for(
            broken.log,
            until=lambda log: "re-publishing 1 event(s)" in log,
            what="retries, then a re-publish",
        )
    finally:
        broken.stop()
    with engine.connect() as c:
        quarantined = c.execute(select(func.count()).select_from(quarantined_events).where(
            quarantined_events.c.task_id == result.id)).scalar_one()  # fmt: skip
    assert quarantined == 0
    assert "badges_test_does_not_exist" in broken.log()
    # The database is back (a worker with the right URL): the retried message is processed.
    healthy = WorkerProcess(concurrency=1, queues=queue)
    try:
        wait_for(
            lambda: lifetime_total(engine, mentor), until=lambda n: n == 1, what="the retried event"
        )
    finally:
        healthy.stop()
