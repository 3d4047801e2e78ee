"""Property: a definition created, enabled or changed after the history was ingested
ends up awarded exactly as if the final configuration had been there from the start.

Two organisations in one embedded SQLite database receive the same random
history: ``before`` under the old definition (then the change is applied and
evaluated retroactively), ``fresh`` under the final definition from its first
event.  The retroactive result must equal the fresh one, plus the old
holders of a non-revocable definition (they keep their awards), and the
preview computed before the evaluation must count exactly what it then did.
"""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine, select

from schema.migrate import upgrade
from schema.tables import earned_badges, notification_outbox
from tests.criteria_strategies import criteria_trees
from tests.helpers import saved_event
from worker.badges.retroactive import load_definitions, preview
from worker.configuration.apply import apply_configuration
from worker.configuration.followup import evaluate_definitions
from worker.configuration.schema import validate_configuration
from worker.core.clock import FixedClock
from worker.db.engine import make_engine
from worker.ingestion.ingest import IncomingEvent, ingest_events

TYPES = ("peer_session", "phone_call", "training_completed")
CLOCK = FixedClock(datetime(2026, 6, 1, tzinfo=UTC))
MENTORS = 5


@pytest.fixture(scope="module")
def sqlite_engine(tmp_path_factory: pytest.TempPathFactory) -> Engine:
    path: Path = tmp_path_factory.mktemp("retro") / "badges.sqlite3"
    engine = make_engine(f"sqlite:///{path}")
    upgrade(engine)
    return engine


criteria = criteria_trees(max_count=6, max_streak=4, courses=["c1", "c2"])

history = st.lists(
    st.tuples(
        st.integers(0, MENTORS - 1),
        st.sampled_from(TYPES),
        st.dates(min_value=date(2026, 1, 1), max_value=date(2026, 5, 31)),
        st.sampled_from(["c1", "c2"]),
    ),
    max_size=40,
)


def _config(org: uuid.UUID, definition: dict[str, Any] | None) -> Any:
    return validate_configuration(
        {
            "organisations": [{"id": str(org), "name": "Retro"}],
            "badges": [] if definition is None else [definition],
        }
    )


def _badge(org: uuid.UUID, c: dict[str, Any], *, enabled: bool, revocable: bool) -> dict[str, Any]:
    return {"organisation_id": str(org), "code": "x", "name": "X", "criteria": c,
            "enabled": enabled, "revocable": revocable}  # fmt: skip


def _ingest(engine: Engine, org: uuid.UUID, mentors: list[uuid.UUID], facts: list[Any]) -> None:
    events = [
        IncomingEvent(
            saved_event(
                org=org,
                mentor=mentors[m],
                activity_type=kind,
                day=day,
                course_id=course if kind == "training_completed" else None,
            )
        )
        for m, kind, day, course in facts
    ]
    with engine.begin() as conn:
        ingest_events(conn, events, clock=CLOCK)


def _holders(engine: Engine, org: uuid.UUID, mentors: list[uuid.UUID]) -> set[int]:
    with engine.connect() as conn:
        held = set(
            conn.scalars(
                select(earned_badges.c.peer_mentor_id).where(earned_badges.c.organisation_id == org)
            )
        )
    return {i for i, m in enumerate(mentors) if m in held}


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    facts=history,
    old=criteria,
    new=criteria,
    change=st.sampled_from(["created", "enabled", "criteria"]),
    revocable=st.booleans(),
)
def test_retroactive_equals_from_scratch(
    sqlite_engine: Engine,
    facts: list[Any],
    old: dict[str, Any],
    new: dict[str, Any],
    change: str,
    revocable: bool,
) -> None:
    engine = sqlite_engine
    before_org, fresh_org = uuid.uuid4(), uuid.uuid4()
    before_mentors = [uuid.uuid4() for _ in range(MENTORS)]
    fresh_mentors = [uuid.uuid4() for _ in range(MENTORS)]
    final = _badge(before_org, new, enabled=True, revocable=revocable)
    initial = None
    if change == "enabled":
        initial = _badge(before_org, new, enabled=False, revocable=revocable)
    elif change == "criteria":
        initial = _badge(before_org, old, enabled=True, revocable=revocable)
    with engine.begin() as conn:
        apply_configuration(conn, _config(before_org, initial), CLOCK)
        apply_configuration(
            conn, _config(fresh_org, {**final, "organisation_id": str(fresh_org)}), CLOCK
        )
    _ingest(engine, before_org, before_mentors, facts)
    _ingest(engine, fresh_org, fresh_mentors, facts)
    old_holders = _holders(engine, before_org, before_mentors)

    with engine.begin() as conn:
        report = apply_configuration(conn, _config(before_org, final), CLOCK)
    if change == "criteria" and old == new:
        assert report.evaluate_definitions == ()
    else:
        assert len(report.evaluate_definitions) == 1
    with engine.connect() as conn:
        expected_counts = preview(conn, load_definitions(conn, report.evaluate_definitions))
        conn.rollback()
    result = evaluate_definitions(engine, report.evaluate_definitions, clock=CLOCK)

    fresh = _holders(engine, fresh_org, fresh_mentors)
    after = _holders(engine, before_org, before_mentors)
    assert after == (fresh if revocable else fresh | old_holders)
    assert [(c.newly_earned, c.lost) for c in result.badges] == [
        (c.newly_earned, c.lost) for c in expected_counts
    ]
    newly = sum(c.newly_earned for c in result.badges)
    lost = sum(c.lost for c in result.badges)
    assert len(after) == len(old_holders) + newly - lost
    with engine.connect() as conn:
        backfill_rows = conn.execute(
            select(notification_outbox.c.channel, notification_outbox.c.state).where(
                notification_outbox.c.organisation_id == before_org,
                notification_outbox.c.backfill.is_(True),
            )
        ).all()
    # In-app only: no push gateway is configured here, so no push rows at all.
    assert sorted(backfill_rows) == [("in_app", "pending")] * newly
