"""Property: any mix of duplicate, reordered, updated and deleted events gives the
same stats and awards as a recomputation from the final set of live activities.

Runs the real ingestion service on the embedded SQLite database (a local
file, no server), in random batch splits.
"""

from __future__ import annotations

import uuid
from collections import Counter
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine, select

from schema.migrate import upgrade
from schema.tables import (
    completed_courses,
    daily_activity_counts,
    earned_badges,
    mentor_activity_counts,
    period_activity_counts,
)
from tests.helpers import deleted_event, saved_event
from worker.cli.demo_data import stats_of
from worker.configuration.apply import apply_configuration
from worker.configuration.schema import validate_configuration
from worker.core.clock import FixedClock
from worker.db.engine import make_engine
from worker.ingestion.ingest import IncomingEvent, ingest_events
from worker.model.criteria import evaluate, parse_criteria, streak_keys
from worker.model.streaks import Period, period_start

ORG = uuid.uuid4()
TYPES = ("peer_session", "phone_call", "training_completed")
BADGES = [
    ("three", {"type": "threshold", "version": 1, "min_count": 3}),
    (
        "two-calls",
        {"type": "threshold", "version": 1, "activity_types": ["phone_call"], "min_count": 2},
    ),
    ("streak-2", {"type": "streak", "version": 1, "period": "week", "min_length": 2}),
    ("course", {"type": "training_completion", "version": 1, "course_ids": ["c1"]}),
]
CLOCK = FixedClock(datetime(2026, 6, 1, tzinfo=UTC))


@pytest.fixture(scope="module")
def sqlite_engine(tmp_path_factory: pytest.TempPathFactory) -> Engine:
    path: Path = tmp_path_factory.mktemp("props") / "badges.sqlite3"
    engine = make_engine(f"sqlite:///{path}")
    upgrade(engine)
    config = validate_configuration(
        {
            "organisations": [{"id": str(ORG), "name": "Props"}],
            "badges": [
                {
                    "organisation_id": str(ORG),
                    "code": code,
                    "name": code,
                    "criteria": c,
                    "revocable": True,
                }
                for code, c in BADGES
            ],
        }
    )
    with engine.begin() as conn:
        apply_configuration(conn, config, CLOCK)
    return engine


facts = st.tuples(
    st.sampled_from(TYPES),
    st.dates(min_value=date(2026, 1, 1), max_value=date(2026, 3, 31)),
)
# One activity's history: a list of (minute offset, facts or None for delete).
history = st.lists(
    st.tuples(st.integers(0, 50), st.one_of(st.none(), facts)), min_size=1, max_size=4
)


def _events(mentor: uuid.UUID, histories: list[list[tuple[int, Any]]]) -> list[dict[str, Any]]:
    events = []
    base = datetime(2026, 4, 1, tzinfo=UTC)
    for entries in histories:
        activity_id = uuid.uuid4()
        for minute, fact in entries:
            at = base + timedelta(minutes=minute)
            if fact is None:
                events.append(
                    deleted_event(activity_id=activity_id, org=ORG, mentor=mentor, occurred_at=at)
                )
            else:
                kind, day = fact
                course = "c1" if kind == "training_completed" else None
                events.append(
                    saved_event(activity_id=activity_id, org=ORG, mentor=mentor, activity_type=kind,
                                day=day, occurred_at=at, course_id=course)
                )  # fmt: skip
    return events


def _winner_key(event: dict[str, Any]) -> tuple[str, bool, str]:
    # ISO strings of one offset sort like instants.
    return (event["occurred_at"], event["event_type"] == "activity.deleted", event["event_id"])


def _live(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    winners: dict[str, dict[str, Any]] = {}
    for event in events:
        current = winners.get(event["activity"]["id"])
        if current is None or _winner_key(event) > _winner_key(current):
            winners[event["activity"]["id"]] = event
    return [e["activity"] for e in winners.values() if e["event_type"] == "activity.saved"]


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    histories=st.lists(history, min_size=1, max_size=5),
    duplicates=st.lists(st.integers(0, 100), max_size=4),
    order=st.randoms(use_true_random=False),
    batch_cuts=st.lists(st.integers(1, 30), max_size=3),
)
def test_stats_and_awards_match_a_recomputation(
    sqlite_engine: Engine, histories: Any, duplicates: list[int], order: Any, batch_cuts: list[int]
) -> None:
    mentor = uuid.uuid4()
    events = _events(mentor, histories)
    published = events + [dict(events[i % len(events)]) for i in duplicates]
    order.shuffle(published)
    cuts = sorted({c for c in batch_cuts if c < len(published)})
    batches = [published[a:b] for a, b in zip([0, *cuts], [*cuts, len(published)], strict=True)]
    for batch in batches:
        with sqlite_engine.begin() as conn:
            ingest_events(conn, [IncomingEvent(e) for e in batch], clock=CLOCK)

    live = _live(events)
    expected_lifetime = Counter(a["activity_type"] for a in live)
    expected_daily = Counter(
        (date.fromisoformat(a["activity_date"]), a["activity_type"]) for a in live
    )
    expected_weeks = Counter(
        (period_start(date.fromisoformat(a["activity_date"]), Period.WEEK), a["activity_type"])
        for a in live
    )
    expected_courses = Counter(a["course_id"] for a in live if a["course_id"])
    keys = set().union(*(streak_keys(parse_criteria(c)) for _, c in BADGES))
    oracle = stats_of(live, keys)
    expected_badges = {code for code, c in BADGES if evaluate(parse_criteria(c), oracle)}

    with sqlite_engine.connect() as conn:
        t = mentor_activity_counts
        lifetime = dict(
            conn.execute(
                select(t.c.activity_type, t.c.activity_count).where(t.c.peer_mentor_id == mentor)
            ).all()
        )
        d = daily_activity_counts
        daily = {
            (r[0], r[1]): r[2]
            for r in conn.execute(
                select(d.c.activity_date, d.c.activity_type, d.c.activity_count).where(
                    d.c.peer_mentor_id == mentor
                )
            )
        }
        p = period_activity_counts
        weekly = {
            (r[0], r[1]): r[2]
            for r in conn.execute(
                select(p.c.period_start, p.c.activity_type, p.c.activity_count).where(
                    p.c.peer_mentor_id == mentor, p.c.period == "week"
                )
            )
        }
        c = completed_courses
        courses = dict(
            conn.execute(
                select(c.c.course_id, c.c.activity_count).where(c.c.peer_mentor_id == mentor)
            ).all()
        )
        from schema.tables import badge_definitions as bd

        badges = set(
            conn.scalars(
                select(bd.c.code)
                .join(earned_badges, earned_badges.c.badge_definition_id == bd.c.id)
                .where(earned_badges.c.peer_mentor_id == mentor)
            )
        )

    assert lifetime == dict(expected_lifetime)
    assert daily == dict(expected_daily)
    assert weekly == dict(expected_weeks)
    assert courses == dict(expected_courses)
    assert badges == expected_badges
