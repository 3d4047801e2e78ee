"""History import on the embedded default (SQLite): the portable path, idempotent."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select

from schema.migrate import upgrade
from schema.tables import (
    earned_badges,
    mentor_activity_counts,
    notification_outbox,
    period_activity_counts,
)
from worker.configuration.apply import apply_configuration
from worker.configuration.schema import validate_configuration
from worker.core.clock import FixedClock
from worker.db.engine import make_engine
from worker.ingestion.history_import import HistoryImportError, import_activities
from worker.ingestion.staging import IMPORT_NAMESPACE, import_event_id


@pytest.mark.usefixtures("push_enabled")  # a backfill award's push row is written skipped
def test_import_on_sqlite_builds_stats_and_backfill_awards_once(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'badges.sqlite3'}")
    upgrade(engine)
    org, mentor = uuid.uuid4(), uuid.uuid4()
    clock = FixedClock(datetime(2026, 1, 1, tzinfo=UTC))
    config = {
        "organisations": [{"id": str(org), "name": "Embedded"}],
        "badges": [{"organisation_id": str(org), "code": "w3", "name": "Three weeks",
                    "criteria": {"type": "streak", "version": 1, "period": "week", "min_length": 3}}],
    }  # fmt: skip
    with engine.begin() as conn:
        apply_configuration(conn, validate_configuration(config), clock)
    path = tmp_path / "history.jsonl"
    lines = [
        {"id": str(uuid.uuid4()), "organisation_id": str(org), "peer_mentor_id": str(mentor),
         "activity_type": "peer_session", "activity_date": (date(2025, 6, 2) + timedelta(days=3 * i)).isoformat(),
         "course_id": None}
        for i in range(7)
    ]  # fmt: skip

    other = uuid.uuid4()  # a second mentor: two groups of one mentor each
    lines.append({**lines[0], "id": str(uuid.uuid4()), "peer_mentor_id": str(other)})
    lines.append(lines[1])  # a repeated line counts once
    path.write_text("\n".join(json.dumps(line) for line in lines) + "\n")

    bad = tmp_path / "bad.jsonl"
    bad.write_text(path.read_text() + '{"id": "not a uuid"}\n')
    with pytest.raises(HistoryImportError) as failed:
        import_activities(engine, bad, clock=clock, group_rows=3)
    assert failed.value.problems[0].startswith("line 10: ")
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(mentor_activity_counts)).scalar() == 0

    for expected_new in (8, 0):
        report = import_activities(engine, path, clock=clock, group_rows=3)
        assert (report.lines, report.imported) == (9, expected_new)
        assert (report.already_present, report.duplicate_lines) == (8 - expected_new, 1)
        assert report.mentors == {mentor: org, other: org}

    with engine.connect() as conn:
        total = conn.execute(select(func.sum(mentor_activity_counts.c.activity_count))).scalar_one()
        weeks = conn.execute(
            select(func.count())
            .select_from(period_activity_counts)
            .where(period_activity_counts.c.period == "week")
        ).scalar_one()
        sources = conn.scalars(select(earned_badges.c.award_source)).all()
        push_states = conn.scalars(
            select(notification_outbox.c.state).where(notification_outbox.c.channel == "push")
        ).all()
    assert total == 8
    assert weeks == 3 + 1  # 2, 5, 8, 11, 14, 17, 20 June 2025: three ISO weeks; other: one
    assert sources == ["backfill"]
    assert push_states == ["skipped"]


def test_import_event_id_is_uuid5_in_the_import_namespace() -> None:
    for activity_id in (uuid.uuid4() for _ in range(200)):
        expected = uuid.uuid5(IMPORT_NAMESPACE, str(activity_id))
        assert import_event_id(str(activity_id)) == expected.hex
        assert uuid.UUID(hex=import_event_id(str(activity_id))).version == 5


def test_lines_that_only_join_into_valid_json_are_each_reported(tmp_path: Path) -> None:
    """Lines are validated a batch per call; the batch must not accept what one line alone fails.

    Lines 1 and 2 are halves of one activity, line 3 holds two activities:
    joined by commas they form an array of three valid activities.
    """
    engine = make_engine(f"sqlite:///{tmp_path / 'badges.sqlite3'}")
    upgrade(engine)
    org = uuid.uuid4()
    clock = FixedClock(datetime(2026, 1, 1, tzinfo=UTC))
    with engine.begin() as conn:
        config = {"organisations": [{"id": str(org), "name": "Embedded"}]}
        apply_configuration(conn, validate_configuration(config), clock)

    def activity() -> str:
        return json.dumps({"id": str(uuid.uuid4()), "organisation_id": str(org),
                           "peer_mentor_id": str(uuid.uuid4()), "activity_type": "phone_call",
                           "activity_date": "2025-06-02"})  # fmt: skip

    split = activity()
    cut = split.index(', "peer_mentor_id"')
    path = tmp_path / "joined.jsonl"
    lines = [activity(), split[:cut], split[cut + 2 :], f"{activity()},{activity()}", activity()]
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(HistoryImportError) as failed:
        import_activities(engine, path, clock=clock)
    assert [p.split(":")[0] for p in failed.value.problems] == ["line 2", "line 3", "line 4"]
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(mentor_activity_counts)).scalar() == 0
