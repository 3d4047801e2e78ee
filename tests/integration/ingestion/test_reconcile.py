"""Reconcile: recompute stats from the ledger, report and repair drift."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import Connection, Engine, delete, select, update

from schema.tables import (
    completed_courses,
    daily_activity_counts,
    earned_badges,
    mentor_activity_counts,
    mentors,
    period_activity_counts,
)
from tests.helpers import badge, deleted_event, saved_event, threshold
from tests.integration.harness import apply, organisation
from tests.tier_helpers import ingest
from worker.cli import main
from worker.configuration.apply import apply_configuration
from worker.configuration.schema import validate_configuration
from worker.core.clock import FixedClock
from worker.ingestion.reconcile import TABLE_NAMES, reconcile, run_reconcile

AT = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)
LATER = FixedClock(AT + timedelta(days=1))
STATS = (mentor_activity_counts, daily_activity_counts, period_activity_counts, completed_courses)


def _history(org: uuid.UUID, mentors_: list[uuid.UUID]) -> list[list[dict[str, Any]]]:
    """Batches of events: saves, an update that moves an activity, a delete, courses."""
    first: list[dict[str, Any]] = []
    moved = uuid.uuid4()
    gone = uuid.uuid4()
    for i, m in enumerate(mentors_):
        first += [
            saved_event(org=org, mentor=m, day=date(2026, 1, 5) + timedelta(days=3 * i + k))
            for k in range(4)
        ]
        first.append(
            saved_event(
                org=org,
                mentor=m,
                day=date(2026, 2, 27),
                activity_type="training_completed",
                course_id=f"course-{i % 2}",
            )
        )
    m0 = mentors_[0]
    first.append(saved_event(activity_id=moved, org=org, mentor=m0, day=date(2026, 1, 31)))
    first.append(saved_event(activity_id=gone, org=org, mentor=m0, day=date(2026, 2, 1)))
    later = AT + timedelta(hours=1)
    second = [
        saved_event(
            activity_id=moved,
            org=org,
            mentor=m0,
            day=date(2026, 3, 1),
            activity_type="phone_call",
            occurred_at=later,
        ),
        deleted_event(activity_id=gone, org=org, mentor=m0, occurred_at=later),
    ]
    return [first, second]


def _seed(conn: Connection, org: uuid.UUID, team: list[uuid.UUID], **config: Any) -> None:
    apply(conn, {"organisations": [organisation(org)], **config})
    for batch in _history(org, team):
        ingest(conn, batch, AT)


def _snapshot(conn: Connection, org: uuid.UUID) -> dict[str, set[tuple[Any, ...]]]:
    return {
        t.name: {tuple(r) for r in conn.execute(select(t).where(t.c.organisation_id == org))}
        for t in STATS
    }


def test_clean_data_reports_zero(conn: Connection) -> None:
    org = uuid.uuid4()
    _seed(conn, org, [uuid.uuid4() for _ in range(3)])
    before = _snapshot(conn, org)
    seen: list[tuple[str, int]] = []
    report = reconcile(conn, clock=LATER, on_progress=lambda table, n: seen.append((table, n)))
    assert report.total == 0 and report.mentors == set()
    assert [table for table, _ in seen] == list(TABLE_NAMES)
    assert _snapshot(conn, org) == before


def test_corrupted_rows_are_repaired_and_counted(conn: Connection) -> None:
    org = uuid.uuid4()
    team = [uuid.uuid4() for _ in range(3)]
    _seed(conn, org, team, badges=[badge(org, "five", threshold(5))])
    assert reconcile(conn, clock=LATER).total == 0
    healthy = _snapshot(conn, org)
    m0, m1, m2 = team

    # Five kinds of damage, one row each.
    conn.execute(
        update(mentor_activity_counts)
        .where(
            mentor_activity_counts.c.peer_mentor_id == m0,
            mentor_activity_counts.c.activity_type == "peer_session",
        )
        .values(activity_count=mentor_activity_counts.c.activity_count + 7)
    )
    conn.execute(
        delete(daily_activity_counts).where(
            daily_activity_counts.c.peer_mentor_id == m1,
            daily_activity_counts.c.activity_date == date(2026, 1, 8),
        )
    )
    conn.execute(
        period_activity_counts.insert().values(
            peer_mentor_id=m1,
            period="week",
            period_start=date(2030, 1, 7),
            activity_type="ghost",
            organisation_id=org,
            activity_count=3,
        )
    )
    conn.execute(
        update(completed_courses)
        .where(completed_courses.c.peer_mentor_id == m2)
        .values(activity_count=0)
    )
    conn.execute(delete(mentors).where(mentors.c.peer_mentor_id == m2))

    dry = reconcile(conn, clock=LATER, repair=False)
    assert dry.total == 5 and not dry.repaired

    report = reconcile(conn, clock=LATER)
    assert report.drifted == {
        "mentor_activity_counts": 1,
        "daily_activity_counts": 1,
        "period_activity_counts": 1,
        "completed_courses": 1,
        "mentors": 1,
    }
    assert report.total == 5 and report.mentors == {m0, m1, m2}
    assert _snapshot(conn, org) == healthy
    assert reconcile(conn, clock=LATER).total == 0

    # Repaired mentors are marked changed (the next tier run looks at them).
    changed = dict(
        conn.execute(
            select(mentors.c.peer_mentor_id, mentors.c.stats_changed_at).where(
                mentors.c.organisation_id == org
            )
        ).all()
    )
    assert changed == dict.fromkeys(team, LATER.instant)


@pytest.mark.usefixtures("push_enabled")  # both channels' rows
def test_repair_awards_badges_the_drift_was_hiding(conn: Connection) -> None:
    org = uuid.uuid4()
    mentor = uuid.uuid4()
    apply(conn, {"organisations": [organisation(org)]})
    ingest(conn, [saved_event(org=org, mentor=mentor, day=date(2026, 1, 5)) for _ in range(3)], AT)
    # The badge appears while the lifetime count is wrongly low.
    conn.execute(
        update(mentor_activity_counts)
        .values(activity_count=1)
        .where(mentor_activity_counts.c.peer_mentor_id == mentor)
    )
    apply(conn, {"badges": [badge(org, "three", threshold(3))]})
    report = reconcile(conn, clock=LATER)
    assert report.total == 1
    assert [b.code for b in report.awarded] == ["three"]
    assert len(report.outbox) == 2  # in-app + push
    held = conn.scalars(
        select(earned_badges.c.peer_mentor_id).where(earned_badges.c.organisation_id == org)
    ).all()
    assert held == [mentor]


def test_run_reconcile_retries_when_an_ingest_commits_underneath(clean_db: Engine) -> None:
    org, mentor = uuid.uuid4(), uuid.uuid4()
    day = date(2026, 1, 5)
    with clean_db.begin() as c:
        apply(c, {"organisations": [organisation(org)]})
        ingest(c, [saved_event(org=org, mentor=mentor, day=day)], AT)
        c.execute(
            update(daily_activity_counts)
            .where(daily_activity_counts.c.peer_mentor_id == mentor)
            .values(activity_count=5)
        )  # drift

    injected: list[bool] = []

    def concurrent_ingest(table: str, drifted: int) -> None:
        # After the first table, while reconcile's snapshot is open, an ingest
        # commits a change to the very row reconcile is about to repair.
        if table == "mentor_activity_counts" and not injected:
            injected.append(True)
            with clean_db.begin() as other:
                ingest(other, [saved_event(org=org, mentor=mentor, day=day)], AT)

    report = run_reconcile(clean_db, clock=LATER, on_progress=concurrent_ingest)
    assert report.attempts == 2
    assert report.drifted["daily_activity_counts"] == 1
    with clean_db.connect() as c:
        count = c.scalar(
            select(daily_activity_counts.c.activity_count).where(
                daily_activity_counts.c.peer_mentor_id == mentor
            )
        )
        assert count == 2  # two live activities on that day
        assert reconcile(c, clock=LATER).total == 0


def test_cli_reconcile_reports_the_drift(
    clean_db: Engine, capsys: pytest.CaptureFixture[str]
) -> None:
    org = uuid.uuid4()
    with clean_db.begin() as c:
        _seed(c, org, [uuid.uuid4(), uuid.uuid4()])
    assert main(["reconcile"]) == 0
    assert "found and repaired 0 drifted row(s)" in capsys.readouterr().out

    with clean_db.begin() as c:
        # Two mentors: peer_session, training_completed, plus one phone_call row.
        c.execute(
            update(mentor_activity_counts)
            .where(mentor_activity_counts.c.organisation_id == org)
            .values(activity_count=99)
        )
    assert main(["reconcile", "--dry-run"]) == 1
    assert "found (dry run, nothing repaired) 5 drifted row(s)" in capsys.readouterr().out
    assert main(["reconcile"]) == 0
    out = capsys.readouterr().out
    assert "mentor_activity_counts: 5 drifted row(s)" in out
    assert "found and repaired 5 drifted row(s)" in out
    assert main(["reconcile"]) == 0
    assert "found and repaired 0 drifted row(s)" in capsys.readouterr().out


def test_reconcile_runs_on_sqlite(sqlite_engine: Engine) -> None:
    org = uuid.uuid4()
    team = [uuid.uuid4(), uuid.uuid4()]
    with sqlite_engine.begin() as c:
        config = validate_configuration({"organisations": [organisation(org)]})
        apply_configuration(c, config, LATER)
        for batch in _history(org, team):
            ingest(c, batch, AT)
    assert run_reconcile(sqlite_engine, clock=LATER).total == 0
    with sqlite_engine.begin() as c:
        healthy = _snapshot(c, org)
        c.execute(update(period_activity_counts).values(activity_count=42))
        c.execute(delete(completed_courses))
    report = run_reconcile(sqlite_engine, clock=LATER)
    assert report.drifted["period_activity_counts"] == len(healthy["period_activity_counts"])
    assert report.drifted["completed_courses"] == len(healthy["completed_courses"])
    with sqlite_engine.connect() as c:
        assert _snapshot(c, org) == healthy
