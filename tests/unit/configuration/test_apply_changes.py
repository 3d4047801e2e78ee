"""Which definitions an applied configuration hands to the retroactive evaluation.

On the embedded SQLite database: created, enabled and criteria-changed
definitions (enabled now) are listed; disabling, renaming, flipping
``revocable`` and ``raw`` criteria are not.  Tier and award-period changes
name their organisation.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine

from schema.migrate import upgrade
from worker.configuration.apply import ApplyReport, apply_configuration
from worker.configuration.schema import validate_configuration
from worker.core.clock import FixedClock
from worker.db.engine import make_engine

CLOCK = FixedClock(datetime(2026, 6, 1, tzinfo=UTC))


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    engine = make_engine(f"sqlite:///{tmp_path / 'badges.sqlite3'}")
    upgrade(engine)
    yield engine
    engine.dispose()


def _apply(engine: Engine, org: uuid.UUID, **sections: list[dict[str, Any]]) -> ApplyReport:
    config = validate_configuration(
        {"organisations": [{"id": str(org), "name": "Changes"}], **sections}
    )
    with engine.begin() as conn:
        return apply_configuration(conn, config, CLOCK)


def _badge(org: uuid.UUID, min_count: int = 3, **extra: Any) -> dict[str, Any]:
    criteria = {"type": "threshold", "version": 1, "min_count": min_count}
    return {"organisation_id": str(org), "code": "b", "name": "B", "criteria": criteria, **extra}


def test_created_enabled_and_changed_definitions_are_evaluated(engine: Engine) -> None:
    org = uuid.uuid4()
    created = _apply(engine, org, badges=[_badge(org)])
    assert len(created.evaluate_definitions) == 1
    (definition,) = created.evaluate_definitions
    steps: list[tuple[dict[str, Any], bool]] = [
        (_badge(org), False),  # the same again
        (_badge(org, name="Renamed"), False),
        (_badge(org, revocable=True), False),
        (_badge(org, 5, revocable=True), True),  # criteria changed
        (_badge(org, 1, revocable=True, enabled=False), False),  # disabled (and lowered)
        (_badge(org, 1, revocable=True, enabled=True), True),  # enabled again
        (_badge(org, criteria={"type": "raw", "version": 1, "raw": {}}), False),
    ]
    for item, evaluated in steps:
        report = _apply(engine, org, badges=[item])
        assert report.evaluate_definitions == ((definition,) if evaluated else ()), item
        assert report.tier_organisations == ()


def test_tier_and_period_changes_name_the_organisation(engine: Engine) -> None:
    org = uuid.uuid4()
    tier = {"organisation_id": str(org), "level": "gold", "min_assignments": 5, "min_streak": 2}
    period = {"organisation_id": str(org), "name": "2026", "start_date": "2026-01-01",
              "end_date": "2026-12-31", "is_active": False}  # fmt: skip
    assert _apply(engine, org, tiers=[tier]).tier_organisations == (org,)
    assert _apply(engine, org, tiers=[tier]).tier_organisations == ()
    assert _apply(engine, org, tiers=[{**tier, "min_streak": 3}]).tier_organisations == (org,)
    assert _apply(engine, org, award_periods=[period]).tier_organisations == (org,)
    assert _apply(engine, org, award_periods=[period]).tier_organisations == ()
    enabled = {**period, "is_active": True}
    report = _apply(engine, org, award_periods=[enabled])
    assert report.tier_organisations == (org,)
    assert report.evaluate_definitions == ()
