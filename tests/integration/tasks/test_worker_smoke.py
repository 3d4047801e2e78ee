"""A real Celery worker process consumes messages from the real Redis."""

from __future__ import annotations

import uuid

from sqlalchemy import Engine, select

from schema.tables import quarantined_events
from tests.helpers import saved_event, wait_for
from tests.integration.harness import WorkerProcess, apply, organisation, processed_count
from worker.tasks.publishing import publish


def test_worker_consumes_an_event_from_redis(engine: Engine, worker: WorkerProcess) -> None:
    org, mentor = uuid.uuid4(), uuid.uuid4()
    apply(engine, {"organisations": [organisation(org)]})
    event = saved_event(org=org, mentor=mentor)
    publish([event])

    def processed() -> int:
        return processed_count(engine, [event["event_id"]])

    assert wait_for(processed, until=lambda n: n == 1, what="the event to be processed") == 1


def test_worker_quarantines_a_message_of_the_wrong_shape(
    engine: Engine, worker: WorkerProcess
) -> None:
    from worker.app import app

    marker = f"wrong-shape-{uuid.uuid4()}"
    result = app.send_task("badges.ingest_activity", args=[marker], queue="activity_events")

    def reasons() -> list[str]:
        with engine.connect() as c:
            return list(
                c.scalars(
                    select(quarantined_events.c.reason).where(
                        quarantined_events.c.task_id == result.id
                    )
                )
            )

    found = wait_for(reasons, until=bool, what="the message to be quarantined")
    assert "exactly one keyword argument 'event'" in found[0]
