"""Property: deciding a group of mentors set-based in SQL awards exactly what evaluating
their snapshots in Python awards.

Random history (counts, courses, weeks and months across a year boundary),
random tier assignments (of mentors with stats, as the tier run assigns them), badges already held and random criteria trees
(thresholds, week and month streaks, courses, tiers, ``all_of``/``any_of``,
``raw`` anywhere) for a few mentors of one organisation on PostgreSQL; then
:func:`worker.badges.backfill.award_mentors` and
:func:`worker.badges.evaluation.evaluate_mentors` each run in a savepoint that
is rolled back, and must award the same (definition, mentor) pairs.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, date, datetime
from typing import Any

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from sqlalchemy import Connection, Engine, insert

from schema.tables import activity_ledger, award_periods, earned_badges, tier_assignments
from tests.criteria_strategies import criteria_trees
from tests.helpers import badge
from tests.integration.harness import apply, organisation
from worker.badges.awards import enabled_definitions
from worker.badges.backfill import award_mentors
from worker.badges.evaluation import evaluate_mentors
from worker.stats.counts import add_from_ledger

NOW = datetime(2026, 6, 1, tzinfo=UTC)
MENTORS = 4
TYPES = ("peer_session", "phone_call", "training_completed")
COURSES = ("c1", "c2", "c3")

criteria = criteria_trees(
    max_count=8,
    max_streak=5,
    courses=COURSES,
    extra_leaves=[
        st.builds(
            lambda t: {"type": "tier", "version": 1, "min_tier": t},
            st.sampled_from(["bronze", "silver", "gold"]),
        ),
        st.just({"type": "raw", "version": 1, "raw": {"manual": True}}),
    ],
)

history = st.lists(
    st.tuples(
        st.integers(0, MENTORS - 1),
        st.sampled_from(TYPES),
        st.dates(min_value=date(2025, 11, 1), max_value=date(2026, 3, 31)),
        st.sampled_from(COURSES),
    ),
    max_size=100,
)


@pytest.fixture
def connection(engine: Engine) -> Iterator[Connection]:
    with engine.connect() as conn:
        yield conn


def _history(conn: Connection, org: uuid.UUID, mentors: list[uuid.UUID], facts: list[Any]) -> None:
    rows = [
        {
            "activity_id": uuid.uuid4(),
            "organisation_id": org,
            "peer_mentor_id": mentors[m],
            "activity_type": kind,
            "activity_date": day,
            "course_id": course if kind == "training_completed" else None,
            "occurred_at": NOW,
            "last_event_id": uuid.uuid4(),
            "deleted": False,
            "updated_at": NOW,
        }
        for m, kind, day, course in facts
    ]
    if rows:
        conn.execute(insert(activity_ledger), rows)
        add_from_ledger(conn, [r["activity_id"] for r in rows], NOW)


def _tiers(conn: Connection, org: uuid.UUID, mentors: list[uuid.UUID], tiers: list[int]) -> None:
    """Tier assignments, for mentors with stats only (as the tier run assigns them)."""
    period = uuid.uuid4()
    conn.execute(
        insert(award_periods).values(
            id=period,
            organisation_id=org,
            name="2026",
            start_date=date(2026, 1, 1),
            end_date=date(2026, 12, 31),
            updated_at=NOW,
        )
    )
    for mentor, tier in zip(mentors, tiers, strict=False):
        if tier:
            conn.execute(
                insert(tier_assignments).values(
                    id=uuid.uuid4(),
                    peer_mentor_id=mentor,
                    organisation_id=org,
                    award_period_id=period,
                    tier=tier,
                    assigned_at=NOW,
                )
            )


def _pairs(awards: list[Any]) -> set[tuple[uuid.UUID, uuid.UUID]]:
    return {(a.badge_definition_id, a.peer_mentor_id) for a in awards}


@settings(
    max_examples=100,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    facts=history,
    definitions=st.lists(criteria, min_size=1, max_size=3),
    tiers=st.lists(st.integers(0, 4), max_size=MENTORS),
    held=st.lists(st.tuples(st.integers(0, 2), st.integers(0, MENTORS - 1)), max_size=4),
)
def test_set_based_awards_equal_snapshot_evaluation(
    connection: Connection,
    facts: list[Any],
    definitions: list[dict[str, Any]],
    tiers: list[int],
    held: list[tuple[int, int]],
) -> None:
    conn = connection
    org = uuid.uuid4()
    mentors = [uuid.uuid4() for _ in range(MENTORS)]
    transaction = conn.begin()
    try:
        apply(
            conn,
            {
                "organisations": [organisation(org)],
                "badges": [badge(org, f"b{i}", c) for i, c in enumerate(definitions)],
            },
        )
        _history(conn, org, mentors, facts)
        active = sorted({m for m, *_ in facts})
        _tiers(conn, org, [mentors[m] for m in active], tiers)
        by_code = {d.code: d for d in enabled_definitions(conn, {org})}
        for i, m in set(held):
            if (d := by_code.get(f"b{i}")) is not None:
                conn.execute(
                    insert(earned_badges).values(
                        id=uuid.uuid4(),
                        badge_definition_id=d.id,
                        peer_mentor_id=mentors[m],
                        organisation_id=org,
                        earned_at=NOW,
                        award_source="manual",
                    )
                )
        group = {m: org for m in mentors}

        savepoint = conn.begin_nested()
        in_python = _pairs(evaluate_mentors(conn, group, now=NOW, source="backfill").awarded)
        savepoint.rollback()
        savepoint = conn.begin_nested()
        in_sql = _pairs(award_mentors(conn, group, now=NOW))
        savepoint.rollback()
    finally:
        transaction.rollback()
    event(f"awards: {min(len(in_python), 3)}+")
    assert in_sql == in_python
