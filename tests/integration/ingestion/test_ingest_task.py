"""The ingest task adapter's error policy, exercised in-process against PostgreSQL."""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import Engine, select
from sqlalchemy.exc import OperationalError

from schema.tables import quarantined_events
from tests.helpers import saved_event
from worker.core.settings import Settings
from worker.ingestion.ingest import IncomingEvent
from worker.tasks import ingest as ingest_task
from worker.tasks.batching import BatchItem


def _reasons(engine: Engine, event_id: str) -> list[str]:
    with engine.connect() as c:
        return list(
            c.scalars(
                select(quarantined_events.c.reason).where(quarantined_events.c.event_id == event_id)
            )
        )


def test_a_defect_quarantines_the_event_instead_of_dropping_it(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(_: object) -> None:
        raise ValueError("boom")

    monkeypatch.setattr(ingest_task, "_ingest", broken)
    event = saved_event(org=uuid.uuid4(), mentor=uuid.uuid4())
    outcome = ingest_task.ingest_activity.run(event=event)
    assert outcome["quarantined"] == 1
    assert _reasons(engine, event["event_id"]) == ["processing failed: ValueError: boom"]


def test_an_outage_is_retried_in_place_then_republished_never_quarantined(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[int] = []

    def down(_: object) -> None:
        calls.append(1)
        raise OperationalError("SELECT 1", {}, ConnectionRefusedError("connection refused"))

    republished: list[tuple[list[object], float, str, int]] = []

    def record(incoming: list[IncomingEvent], *, countdown: float, retry: object) -> None:
        republished.append(([i.payload for i in incoming], countdown, retry.queue, retry.retries))  # type: ignore[attr-defined]

    monkeypatch.setattr(ingest_task, "_ingest", down)
    monkeypatch.setattr(ingest_task, "_republish", record)
    monkeypatch.setattr(ingest_task, "get_settings", lambda: Settings(max_retry_delay_s=3))
    event = saved_event(org=uuid.uuid4(), mentor=uuid.uuid4())
    outcome = ingest_task.ingest_activity.run_batch(
        [BatchItem("t-1", (), {"event": event}, retries=2, queue="activity_events")]
    )
    assert outcome["quarantined"] == 0
    assert len(calls) >= 2  # retried in place before giving the batch back
    assert republished == [([event], 3, "activity_events", 2)]
    assert _reasons(engine, event["event_id"]) == []
