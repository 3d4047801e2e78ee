"""Batched consumption keeps every guarantee of the per-event pipeline."""

from __future__ import annotations

import threading
import uuid
from datetime import UTC, date, datetime, timedelta

from sqlalchemy import Engine, func, select

from schema.tables import processed_events, quarantined_events
from tests.helpers import saved_event, wait_for
from tests.integration.harness import WorkerProcess, apply, lifetime_total, organisation
from worker.app import app
from worker.core.clock import FixedClock
from worker.ingestion.ingest import IncomingEvent, ingest_events
from worker.model.events import TASK_NAME


def _publish(events: list[dict[str, object]], queue: str) -> list[str]:
    ids = []
    with app.producer_or_acquire() as producer:
        for e in events:
            ids.append(
                app.send_task(TASK_NAME, kwargs={"event": e}, queue=queue, producer=producer).id
            )
    return ids


def _processed(engine: Engine, events: list[dict[str, object]]) -> int:
    ids = [uuid.UUID(str(e["event_id"])) for e in events]
    with engine.connect() as c:
        total = 0
        for start in range(0, len(ids), 1000):
            total += c.execute(
                select(func.count()).select_from(processed_events)
                .where(processed_events.c.event_id.in_(ids[start : start + 1000]))
            ).scalar_one()  # fmt: skip
    return int(total)


def test_a_poisoned_message_is_quarantined_without_failing_its_batch(engine: Engine) -> None:
    org, mentor = uuid.uuid4(), uuid.uuid4()
    apply(engine, {"organisations": [organisation(org)]})
    queue = f"batch-{uuid.uuid4().hex[:8]}"
    good = [
        saved_event(org=org, mentor=mentor, day=date(2026, 2, 1) + timedelta(days=i))
        for i in range(20)
    ]
    poisoned = {**saved_event(org=org, mentor=mentor), "schema_version": 42}
    # Published before the worker starts, so they arrive together and fill one batch.
    task_ids = _publish([*good[:10], poisoned, *good[10:]], queue)
    worker = WorkerProcess(concurrency=1, queues=queue, env={"INGEST_FLUSH_INTERVAL_S": "1"})
    try:
        wait_for(
            lambda: lifetime_total(engine, mentor), until=lambda n: n == 20, what="the good events"
        )
        with engine.connect() as c:
            reason = c.execute(
                select(quarantined_events.c.reason).where(
                    quarantined_events.c.task_id == task_ids[10]
                )
            ).scalar_one()
        assert "unsupported schema version 42" in reason
        wait_for(
            worker.log, until=lambda log: "ingested batch of 21" in log, what="one batch of 21"
        )
    finally:
        worker.stop()


def test_a_batch_whose_worker_is_killed_before_commit_is_redelivered_and_processed_once(
    engine: Engine,
) -> None:
    org = uuid.uuid4()
    apply(engine, {"organisations": [organisation(org)]})
    mentors = [uuid.uuid4() for _ in range(50)]
    events = [
        saved_event(org=org, mentor=mentors[i % 50], day=date(2025, 1, 1) + timedelta(days=i % 300))
        for i in range(3000)
    ]
    queue = f"kill-{uuid.uuid4().hex[:8]}"
    _publish(events, queue)
    env = {
        # One batch holds every message; it is flushed once the queue is drained,
        # so no message is in transit between the queue and the worker at the kill.
        "INGEST_BATCH_SIZE": "5000",
        "INGEST_FLUSH_INTERVAL_S": "5",
        # Messages held by a dead worker come back after 5 s (default: an hour).
        "BROKER_VISIBILITY_TIMEOUT_S": "5",
        "BROKER_RESTORE_INTERVAL_S": "1",
    }
    doomed = WorkerProcess(concurrency=1, queues=queue, env=env)
    wait_for(
        doomed.log, until=lambda log: "processing batch of 3000" in log, what="the batch to start"
    )
    doomed.kill()  # SIGKILL, worker and pool process, while the batch is being processed
    assert _processed(engine, events) == 0, "the batch committed before the kill"
    survivor = WorkerProcess(concurrency=2, queues=queue, env={**env, "INGEST_BATCH_SIZE": "500"})
    try:
        wait_for(lambda: _processed(engine, events), until=lambda n: n == len(events),
                 timeout=180, what="every event after the restart")  # fmt: skip
    finally:
        survivor.stop()
    assert lifetime_total(engine, *mentors) == len(events)


def test_batches_locking_overlapping_mentors_in_opposite_orders_do_not_deadlock(
    engine: Engine,
) -> None:
    org = uuid.uuid4()
    apply(engine, {"organisations": [organisation(org)]})
    mentors = [uuid.uuid4() for _ in range(6)]
    clock = FixedClock(datetime(2026, 6, 1, tzinfo=UTC))
    errors: list[BaseException] = []
    rounds = 15

    def run(order: list[uuid.UUID], barrier: threading.Barrier) -> None:
        try:
            for _ in range(rounds):
                batch = [IncomingEvent(saved_event(org=org, mentor=m)) for m in order]
                barrier.wait(timeout=30)
                with engine.begin() as conn:
                    ingest_events(conn, batch, clock=clock)
        except BaseException as exc:  # collected and asserted on below
            errors.append(exc)

    barrier = threading.Barrier(2)
    threads = [
        threading.Thread(target=run, args=(mentors, barrier)),
        threading.Thread(target=run, args=(mentors[::-1], barrier)),
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert errors == []
    assert lifetime_total(engine, *mentors) == 2 * rounds * len(mentors)
