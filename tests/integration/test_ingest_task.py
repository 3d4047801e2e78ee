"""The ingest task adapter's error policy, exercised in-process against PostgreSQL."""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import Engine, select
from sqlalchemy.exc import OperationalError

from schema.tables import quarantined_events
from tests.helpers import saved_event
from worker.tasks import ingest as ingest_task


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


def test_an_outage_is_raised_for_retry_not_quarantined(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    def down(_: object) -> None:
        raise OperationalError("SELECT 1", {}, ConnectionRefusedError("connection refused"))

    monkeypatch.setattr(ingest_task, "_ingest", down)
    event = saved_event(org=uuid.uuid4(), mentor=uuid.uuid4())
    with pytest.raises(OperationalError):
        ingest_task.ingest_activity.run(event=event)
    assert _reasons(engine, event["event_id"]) == []
