"""The year summary (Ditt likepersonsår) against hand-computed values."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, date, datetime
from typing import Any

import pytest
from sqlalchemy import Connection, Engine

from tests.helpers import badge, deleted_event, saved_event, streak, threshold
from tests.integration.harness import apply, organisation
from tests.tier_helpers import award_period, ingest, period_id, tier
from worker.badges.awards import award_badge, get_definition_by_code
from worker.cli import main
from worker.core.clock import FixedClock
from worker.model.tiers import TierEligibility, TierLevel
from worker.tiers.reevaluation import reevaluate_tiers
from worker.tiers.summary import MentorNotFound, YearSummary, year_summary

INGESTED_AT = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)
EVALUATED_AT = datetime(2026, 6, 10, 12, 0, tzinfo=UTC)
NOW = FixedClock(datetime(2026, 11, 1, 12, 0, tzinfo=UTC))
RAW = {"type": "raw", "version": 1, "raw": {"note": "manual only"}}

#: (date, type) of the fixture mentor's activities.  ISO weeks are named by Monday.
ACTIVITIES = [
    (date(2025, 12, 1), "peer_session"),  # 2025, week Dec 1
    (date(2025, 12, 30), "phone_call"),  # 2025, week Dec 29 (spans New Year)
    (date(2026, 1, 2), "peer_session"),  # 2026, week Dec 29  -+
    (date(2026, 1, 5), "peer_session"),  # week Jan 5            | 3 weeks in a row
    (date(2026, 1, 12), "phone_call"),  # week Jan 12           -+
    (date(2026, 1, 14), "peer_session"),  # week Jan 12
    (date(2026, 1, 26), "group_meeting"),  # week Jan 26 (Jan 19 empty)
    (date(2026, 2, 2), "peer_session"),  # week Feb 2
    (date(2026, 3, 2), "peer_session"),  # week Mar 2
    (date(2026, 6, 1), "peer_session"),  # week Jun 1
]
DELETED = (date(2026, 2, 9), "peer_session")  # saved, then deleted: counts nowhere
COURSE = (date(2026, 3, 2), "training_completed")


def _fixture(conn: Connection) -> tuple[uuid.UUID, uuid.UUID]:
    org, mentor = uuid.uuid4(), uuid.uuid4()
    apply(
        conn,
        {
            "organisations": [organisation(org)],
            "tiers": [
                tier(org, "bronze", 3, 2),
                tier(org, "silver", 6, 3),
                tier(org, "gold", 12, 6),
                tier(org, "platinum", 20, 10),
            ],
            "award_periods": [award_period(org)],
            "badges": [
                badge(org, "first-activity", threshold(1)),
                badge(org, "ten-sessions", threshold(10, "peer_session")),
                badge(org, "four-weeks", streak("week", 4)),
                badge(
                    org,
                    "two-courses",
                    {"type": "training_completion", "version": 1, "course_ids": ["c1", "c2"]},
                ),
                badge(org, "silver-mentor", {"type": "tier", "version": 1, "min_tier": "silver"}),
                badge(org, "gold-mentor", {"type": "tier", "version": 1, "min_tier": "gold"}),
                badge(org, "switched-off", threshold(1), enabled=False),
                badge(org, "new-year-2026", RAW),
                badge(org, "new-year-2025", RAW),
                badge(org, "never-given", RAW),
            ],
        },
    )
    events = [saved_event(org=org, mentor=mentor, day=d, activity_type=t) for d, t in ACTIVITIES]
    events.append(
        saved_event(org=org, mentor=mentor, day=COURSE[0], activity_type=COURSE[1], course_id="c1")
    )
    doomed = saved_event(org=org, mentor=mentor, day=DELETED[0], activity_type=DELETED[1])
    ingest(conn, [*events, doomed], INGESTED_AT)
    ingest(
        conn,
        [
            deleted_event(
                activity_id=uuid.UUID(doomed["activity"]["id"]),
                org=org,
                mentor=mentor,
                occurred_at=INGESTED_AT,
            )
        ],
        INGESTED_AT,
    )
    # Manual awards either side of New Year in Oslo: 23:30 UTC is already 00:30 local.
    for code, at in [
        ("new-year-2026", datetime(2025, 12, 31, 23, 30, tzinfo=UTC)),
        ("new-year-2025", datetime(2025, 12, 31, 22, 30, tzinfo=UTC)),
    ]:
        definition = get_definition_by_code(conn, org, code)
        award_badge(conn, definition.id, mentor, now=at)
    reevaluate_tiers(conn, clock=FixedClock(EVALUATED_AT), organisation_id=org)
    return org, mentor


def test_year_summary_matches_hand_computed_values(conn: Connection) -> None:
    org, mentor = _fixture(conn)
    summary = year_summary(conn, mentor, 2026, clock=NOW)

    assert summary.peer_mentor_id == mentor and summary.organisation_id == org
    assert summary.generated_at == NOW.instant
    assert summary.activity_counts == {
        "group_meeting": 1,
        "peer_session": 6,
        "phone_call": 1,
        "training_completed": 1,
    }
    assert summary.total_activities == 9
    assert summary.longest_weekly_streak == 3
    assert summary.award_period is not None and summary.award_period.id == period_id(org)
    # In the period: 9 activities, streak 3 -> silver (6, 3); gold needs (12, 6).
    assert (summary.tier, summary.tier_level, summary.next_tier) == ("silver", 2, "gold")
    assert summary.eligibility == TierEligibility(
        tier=TierLevel.GOLD,
        assignments_met=False,
        streak_met=False,
        progress_to_next_tier=0.5,  # min(9/12, 3/6)
    )
    assert summary.progress_to_next_tier == 0.5
    assert [(b.code, b.earned_at) for b in summary.badges] == [
        ("new-year-2026", datetime(2025, 12, 31, 23, 30, tzinfo=UTC)),
        ("first-activity", INGESTED_AT),
        ("silver-mentor", EVALUATED_AT),
    ]
    # Lifetime progress: 7 peer sessions (one in 2025), best streak 3 weeks, 1 of 2 courses.
    assert {p.code: (p.current, p.target, p.unit, p.progress) for p in summary.badge_progress} == {
        "ten-sessions": (7, 10, "activities", 0.7),
        "four-weeks": (3, 4, "weeks", 0.75),
        "two-courses": (1, 2, "courses", 0.5),
        "gold-mentor": (2, 3, "tier level", pytest.approx(2 / 3)),
    }


def test_a_year_without_an_award_period_measures_the_calendar_year(conn: Connection) -> None:
    _, mentor = _fixture(conn)
    summary = year_summary(conn, mentor, 2025, clock=NOW)
    assert summary.activity_counts == {"peer_session": 1, "phone_call": 1}
    assert summary.longest_weekly_streak == 1  # weeks of Dec 1 and Dec 29 are not adjacent
    assert summary.award_period is None and summary.tier is None
    assert summary.next_tier == "bronze"
    assert summary.eligibility is not None
    assert summary.eligibility.tier is TierLevel.BRONZE
    assert summary.progress_to_next_tier == 0.5  # min(2/3, 1/2)
    assert [b.code for b in summary.badges] == ["new-year-2025"]


def test_summary_round_trips_through_json(conn: Connection) -> None:
    _, mentor = _fixture(conn)
    summary = year_summary(conn, mentor, 2026, clock=NOW)
    assert YearSummary.model_validate_json(summary.model_dump_json()) == summary
    data = json.loads(summary.model_dump_json())
    assert data["tier"] == "silver"
    assert data["eligibility"]["overall_eligible"] is False
    assert {
        "tier",
        "progress_to_next_tier",
        "activity_counts",
        "longest_weekly_streak",
        "badges",
    } <= set(data)


def test_unknown_mentor_is_reported(conn: Connection) -> None:
    with pytest.raises(MentorNotFound):
        year_summary(conn, uuid.uuid4(), 2026, clock=NOW)


def test_cli_prints_the_summary_as_json(
    clean_db: Engine, capsys: pytest.CaptureFixture[str]
) -> None:
    with clean_db.begin() as c:
        _, mentor = _fixture(c)
    assert main(["summary", "--mentor", str(mentor), "--year", "2026", "--json"]) == 0
    data: dict[str, Any] = json.loads(capsys.readouterr().out)
    assert data["tier"] == "silver"
    assert data["activity_counts"]["peer_session"] == 6
    assert data["longest_weekly_streak"] == 3
    assert 0.0 <= data["progress_to_next_tier"] <= 1.0
    assert [b["code"] for b in data["badges"]] == [
        "new-year-2026",
        "first-activity",
        "silver-mentor",
    ]

    assert main(["summary", "--mentor", str(mentor), "--year", "2026"]) == 0
    text = capsys.readouterr().out
    assert "tier in 2026: silver" in text and "ten-sessions" in text

    assert main(["summary", "--mentor", str(uuid.uuid4()), "--year", "2026"]) == 2
    assert "no activity or badges" in capsys.readouterr().err
