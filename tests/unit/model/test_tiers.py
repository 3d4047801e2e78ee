from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from pydantic import ValidationError

from worker.core.clock import FixedClock
from worker.model.tiers import (
    RecognitionTier,
    TierAssignment,
    TierAwardPeriod,
    TierEligibility,
    TierLevel,
    highest_eligible_tier,
)

OSLO = ZoneInfo("Europe/Oslo")
ORG = uuid.uuid4()


def test_levels_have_explicit_values_and_order_by_value() -> None:
    assert [t.value for t in TierLevel] == [1, 2, 3, 4]
    assert TierLevel.BRONZE < TierLevel.SILVER < TierLevel.GOLD < TierLevel.PLATINUM
    assert sorted([TierLevel.PLATINUM, TierLevel.BRONZE, TierLevel.GOLD]) == [
        TierLevel.BRONZE,
        TierLevel.GOLD,
        TierLevel.PLATINUM,
    ]
    assert max(TierLevel) is TierLevel.PLATINUM
    assert TierLevel.from_name("Gold") is TierLevel.GOLD
    assert TierLevel.GOLD.next() is TierLevel.PLATINUM
    assert TierLevel.PLATINUM.next() is None


def test_unknown_level_name_lists_the_allowed_ones() -> None:
    with pytest.raises(ValueError, match="allowed: bronze, silver, gold, platinum"):
        TierLevel.from_name("diamond")


def _period(start: date, end: date, *, active: bool = True) -> TierAwardPeriod:
    return TierAwardPeriod(
        id=uuid.uuid4(),
        organisation_id=ORG,
        name="2026",
        start_date=start,
        end_date=end,
        is_active=active,
    )


@pytest.mark.parametrize(
    "model",
    [
        RecognitionTier(
            organisation_id=ORG, level=TierLevel.GOLD, min_assignments=20, min_streak=8,
            activity_types=("peer_session",),
        ),
        TierEligibility(tier=TierLevel.SILVER, assignments_met=True, streak_met=False, progress_to_next_tier=0.4),
        _period(date(2026, 1, 1), date(2026, 12, 31), active=False),
        TierAssignment(
            id=uuid.uuid4(), peer_mentor_id=uuid.uuid4(), organisation_id=ORG, award_period_id=uuid.uuid4(),
            tier=TierLevel.PLATINUM, assigned_at=datetime(2026, 5, 1, 12, tzinfo=UTC),
        ),
    ],
)  # fmt: skip
def test_models_round_trip_through_json(model: object) -> None:
    restored = type(model).model_validate_json(model.model_dump_json())  # type: ignore[attr-defined]
    assert restored == model


def test_models_are_immutable() -> None:
    period = _period(date(2026, 1, 1), date(2026, 12, 31))
    with pytest.raises(ValidationError):
        period.is_active = False  # type: ignore[misc]


@pytest.mark.parametrize(
    ("assignments_met", "streak_met", "overall"),
    [(True, True, True), (True, False, False), (False, True, False), (False, False, False)],
)
def test_overall_eligible_truth_table(
    assignments_met: bool, streak_met: bool, overall: bool
) -> None:
    e = TierEligibility(
        tier=TierLevel.GOLD,
        assignments_met=assignments_met,
        streak_met=streak_met,
        progress_to_next_tier=0.5,
    )
    assert e.overall_eligible is overall


def test_overall_eligible_cannot_be_forced_from_json() -> None:
    forged = '{"tier": 3, "assignments_met": false, "streak_met": true, "progress_to_next_tier": 0.1, "overall_eligible": true}'
    assert TierEligibility.model_validate_json(forged).overall_eligible is False


@pytest.mark.parametrize(
    ("raw", "clamped"), [(-0.5, 0.0), (0.0, 0.0), (0.25, 0.25), (1.0, 1.0), (7.5, 1.0)]
)
def test_progress_is_clamped(raw: float, clamped: float) -> None:
    e = TierEligibility(
        tier=TierLevel.BRONZE, assignments_met=False, streak_met=False, progress_to_next_tier=raw
    )
    assert e.progress_to_next_tier == clamped


def test_eligibility_progress_is_the_lesser_fraction_of_the_next_tier() -> None:
    silver = RecognitionTier(
        organisation_id=ORG, level=TierLevel.SILVER, min_assignments=10, min_streak=4
    )
    gold = RecognitionTier(
        organisation_id=ORG, level=TierLevel.GOLD, min_assignments=20, min_streak=8
    )
    e = silver.eligibility(assignments=15, streak=2, next_tier=gold)
    assert (e.assignments_met, e.streak_met, e.overall_eligible) == (True, False, False)
    assert e.progress_to_next_tier == pytest.approx(0.25)  # min(15/20, 2/8)
    assert gold.eligibility(assignments=999, streak=999).progress_to_next_tier == 1.0


def test_highest_eligible_tier_needs_both_thresholds() -> None:
    tiers = [
        RecognitionTier(
            organisation_id=ORG, level=TierLevel.BRONZE, min_assignments=5, min_streak=1
        ),
        RecognitionTier(
            organisation_id=ORG, level=TierLevel.SILVER, min_assignments=10, min_streak=6
        ),
        RecognitionTier(
            organisation_id=ORG, level=TierLevel.GOLD, min_assignments=20, min_streak=4
        ),
    ]
    assert highest_eligible_tier(tiers, assignments=25, streak=5) is TierLevel.GOLD
    assert highest_eligible_tier(tiers, assignments=25, streak=3) is TierLevel.BRONZE
    assert highest_eligible_tier(tiers, assignments=4, streak=50) is None


def _at(local: datetime) -> FixedClock:
    return FixedClock(local.replace(tzinfo=OSLO))


@pytest.mark.parametrize(
    ("instant", "expected"),
    [
        (datetime(2025, 12, 31, 23, 59, 59), False),  # just before the first day (Oslo)
        (datetime(2026, 1, 1, 0, 0, 0), True),  # first instant of the first day
        (datetime(2026, 6, 15, 12, 0), True),
        (datetime(2026, 12, 31, 23, 59, 59), True),  # last instant of the last day: end inclusive
        (datetime(2027, 1, 1, 0, 0, 0), False),  # the day after
    ],
)
def test_is_currently_active_boundaries_in_oslo_time(instant: datetime, expected: bool) -> None:
    period = _period(date(2026, 1, 1), date(2026, 12, 31))
    assert period.is_currently_active(_at(instant), OSLO) is expected


def test_boundary_uses_local_date_not_utc() -> None:
    period = _period(date(2026, 1, 1), date(2026, 12, 31))
    # 23:30 UTC on 31 Dec 2025 is already 00:30 on 1 Jan 2026 in Oslo.
    assert period.is_currently_active(FixedClock(datetime(2025, 12, 31, 23, 30, tzinfo=UTC)), OSLO)
    # 23:30 UTC on 31 Dec 2026 is 1 Jan 2027 in Oslo: over.
    assert not period.is_currently_active(
        FixedClock(datetime(2026, 12, 31, 23, 30, tzinfo=UTC)), OSLO
    )


def test_inactive_flag_wins_over_dates() -> None:
    period = _period(date(2026, 1, 1), date(2026, 12, 31), active=False)
    assert not period.is_currently_active(_at(datetime(2026, 6, 1, 12)), OSLO)


def test_dst_change_day_is_inside_a_period_ending_that_day() -> None:
    # 29 March 2026: clocks go from 02:00 to 03:00 in Oslo.
    period = _period(date(2026, 3, 1), date(2026, 3, 29))
    assert period.is_currently_active(_at(datetime(2026, 3, 29, 23, 59)), OSLO)
    late = datetime(2026, 3, 29, 23, 59, tzinfo=OSLO) + timedelta(minutes=2)
    assert not period.is_currently_active(FixedClock(late), OSLO)


def test_single_day_period_and_end_before_start() -> None:
    one_day = _period(date(2026, 5, 17), date(2026, 5, 17))
    assert one_day.is_currently_active(_at(datetime(2026, 5, 17, 8)), OSLO)
    with pytest.raises(ValidationError, match="before start_date"):
        _period(date(2026, 5, 17), date(2026, 5, 16))


def test_fixed_clock_needs_a_timezone() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        FixedClock(datetime(2026, 1, 1))
