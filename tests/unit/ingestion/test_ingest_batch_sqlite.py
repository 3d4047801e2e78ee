"""The two-step batch on the embedded default (SQLite): everything in the first step."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from sqlalchemy import func, select

from schema.migrate import upgrade
from schema.tables import mentor_activity_counts, processed_events
from tests.helpers import saved_event
from worker.configuration.apply import apply_configuration
from worker.configuration.schema import validate_configuration
from worker.core.clock import FixedClock
from worker.db.engine import make_engine
from worker.ingestion.batch import ingest_batch
from worker.ingestion.ingest import IncomingEvent


def test_on_sqlite_every_mentor_is_acquired_and_nothing_is_deferred(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'badges.sqlite3'}")
    upgrade(engine)
    org = uuid.uuid4()
    clock = FixedClock(datetime(2026, 4, 1, tzinfo=UTC))
    config = {"organisations": [{"id": str(org), "name": "Embedded"}], "badges": []}
    with engine.begin() as conn:
        apply_configuration(conn, validate_configuration(config), clock)
    mentors = [uuid.uuid4() for _ in range(3)]
    events = [
        saved_event(org=org, mentor=m, day=date(2026, 3, 2) + timedelta(days=i))
        for i in range(2)
        for m in mentors
    ]
    incoming = [IncomingEvent(e) for e in [*events, events[0]]]  # one redelivered

    result = ingest_batch(engine, incoming, clock=clock)

    assert result.deferred == []
    assert (result.received, result.applied, result.duplicates) == (7, 6, 1)
    with engine.connect() as conn:
        assert conn.scalar(select(func.count()).select_from(processed_events)) == 6
        total = conn.scalar(select(func.sum(mentor_activity_counts.c.activity_count)))
    assert total == 6
    engine.dispose()
