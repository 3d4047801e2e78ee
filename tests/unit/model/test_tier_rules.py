from __future__ import annotations

import uuid
from datetime import date, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from worker.model.tier_rules import (
    DailyCount,
    PeriodWeeks,
    WindowStats,
    config_fingerprint,
    covering_period,
    eligibility_towards_next,
    next_tier,
    period_weeks,
    type_filters,
    window_stats,
)
from worker.model.tiers import RecognitionTier, TierAwardPeriod, TierLevel

ORG = uuid.uuid4()


def _tier(level: TierLevel, a: int, s: int, *types: str) -> RecognitionTier:
    return RecognitionTier(
        organisation_id=ORG, level=level, min_assignments=a, min_streak=s, activity_types=types
    )


def _period(start: date, end: date, *, name: str = "p", active: bool = True) -> TierAwardPeriod:
    return TierAwardPeriod(
        id=uuid.uuid4(),
        organisation_id=ORG,
        name=name,
        start_date=start,
        end_date=end,
        is_active=active,
    )


TIERS = [
    _tier(TierLevel.BRONZE, 3, 2),
    _tier(TierLevel.SILVER, 8, 4),
    _tier(TierLevel.GOLD, 15, 6),
    _tier(TierLevel.PLATINUM, 25, 10, "peer_session"),
]
YEAR = _period(date(2026, 1, 1), date(2026, 12, 31))


def test_fingerprint_ignores_order_and_changes_with_dates_and_thresholds() -> None:
    base = config_fingerprint(YEAR, TIERS)
    assert base == config_fingerprint(YEAR, list(reversed(TIERS)))
    assert base == config_fingerprint(YEAR.model_copy(update={"name": "renamed"}), TIERS)
    assert base != config_fingerprint(
        YEAR.model_copy(update={"end_date": date(2026, 12, 30)}), TIERS
    )
    assert base != config_fingerprint(
        YEAR.model_copy(update={"start_date": date(2026, 1, 2)}), TIERS
    )
    assert base != config_fingerprint(YEAR, [*TIERS[:3], _tier(TierLevel.PLATINUM, 25, 11)])
    assert base != config_fingerprint(YEAR, [*TIERS[:3], _tier(TierLevel.PLATINUM, 25, 10)])
    assert base != config_fingerprint(YEAR, TIERS[:3])


def test_type_filters_are_distinct_and_stable() -> None:
    tiers = [*TIERS, _tier(TierLevel.GOLD, 1, 1, "peer_session", "call")]
    assert type_filters(tiers) == [
        frozenset(),
        frozenset({"call", "peer_session"}),
        frozenset({"peer_session"}),
    ]
    assert type_filters(list(reversed(tiers))) == type_filters(tiers)


@pytest.mark.parametrize(
    ("held", "expected"),
    [
        (None, TierLevel.BRONZE),
        (TierLevel.BRONZE, TierLevel.SILVER),
        (TierLevel.GOLD, TierLevel.PLATINUM),
        (TierLevel.PLATINUM, None),
    ],
)
def test_next_tier(held: TierLevel | None, expected: TierLevel | None) -> None:
    found = next_tier(TIERS, held)
    assert (found.level if found else None) == expected


def test_next_tier_skips_levels_that_are_not_configured() -> None:
    tiers = [TIERS[0], TIERS[2]]
    found = next_tier(tiers, TierLevel.BRONZE)
    assert found is not None and found.level is TierLevel.GOLD
    assert next_tier([], None) is None


def test_window_stats_counts_only_dates_inside_the_closed_range() -> None:
    start, end = date(2026, 1, 1), date(2026, 1, 31)  # Thursday .. Saturday
    daily = [
        DailyCount(date(2025, 12, 31), "peer_session", 5),  # day before: out
        DailyCount(date(2026, 1, 1), "peer_session", 1),  # first day (week of Dec 29)
        DailyCount(date(2026, 1, 5), "call", 2),  # next week
        DailyCount(date(2026, 1, 12), "peer_session", 1),
        DailyCount(date(2026, 1, 19), "peer_session", 0),  # zero rows never count
        DailyCount(date(2026, 1, 31), "peer_session", 1),  # last day
        DailyCount(date(2026, 2, 1), "peer_session", 9),  # day after: out
    ]
    assert window_stats(daily, (), start, end) == WindowStats(count=5, longest_weekly_streak=3)
    assert window_stats(daily, ("peer_session",), start, end) == WindowStats(3, 1)
    assert window_stats(daily, ("call",), start, end) == WindowStats(2, 1)
    assert window_stats([], (), start, end) == WindowStats(0, 0)


@given(
    st.lists(st.tuples(st.integers(0, 120), st.sampled_from(["a", "b"]), st.integers(1, 3))),
    st.integers(0, 60),
    st.integers(0, 80),
)
def test_window_stats_matches_a_day_by_day_model(
    entries: list[tuple[int, str, int]], offset: int, length: int
) -> None:
    origin = date(2025, 12, 1)
    daily = [DailyCount(origin + timedelta(days=d), t, n) for d, t, n in entries]
    start = origin + timedelta(days=offset)
    end = start + timedelta(days=length)
    inside = [d for d in daily if start <= d.day <= end and d.activity_type == "a"]
    active_weeks = {(d.day - date(2025, 12, 1)).days // 7 for d in inside}  # Dec 1 is a Monday
    longest = run = 0
    for week in range(0, 40):
        run = run + 1 if week in active_weeks else 0
        longest = max(longest, run)
    assert window_stats(daily, ["a"], start, end) == WindowStats(
        sum(d.count for d in inside), longest
    )


def test_eligibility_towards_next_tier() -> None:
    stats = {
        frozenset(): WindowStats(count=12, longest_weekly_streak=3),
        frozenset({"peer_session"}): WindowStats(count=5, longest_weekly_streak=2),
    }
    e = eligibility_towards_next(TIERS, TierLevel.BRONZE, stats)
    assert e is not None
    assert e.tier is TierLevel.SILVER
    assert e.assignments_met and not e.streak_met and not e.overall_eligible
    assert e.progress_to_next_tier == pytest.approx(0.75)  # min(12/8 -> 1.5, 3/4)

    nothing = eligibility_towards_next(TIERS, None, {k: WindowStats(0, 0) for k in stats})
    assert nothing is not None and nothing.tier is TierLevel.BRONZE
    assert nothing.progress_to_next_tier == 0.0

    past_all = eligibility_towards_next(
        TIERS[:3], TierLevel.SILVER, {frozenset(): WindowStats(100, 50)}
    )
    assert past_all is not None and past_all.progress_to_next_tier == 1.0  # clamped


def test_eligibility_at_the_top_is_complete() -> None:
    stats = {frozenset(): WindowStats(1, 1), frozenset({"peer_session"}): WindowStats(1, 1)}
    e = eligibility_towards_next(TIERS, TierLevel.PLATINUM, stats)
    assert e is not None and e.tier is TierLevel.PLATINUM and e.progress_to_next_tier == 1.0
    assert eligibility_towards_next([], None, {}) is None


def test_covering_period_prefers_active_then_largest_overlap() -> None:
    whole = _period(date(2026, 1, 1), date(2026, 12, 31), name="whole")
    school = _period(date(2025, 8, 1), date(2026, 7, 31), name="school year")
    off = _period(date(2026, 1, 1), date(2026, 12, 31), name="off", active=False)
    assert covering_period([school, whole], 2026) == (whole, whole.start_date, whole.end_date)
    assert covering_period([school, off], 2026)[0] == school
    assert covering_period([school], 2025)[0] == school
    assert covering_period([school, whole], 2024) == (None, date(2024, 1, 1), date(2024, 12, 31))


@given(
    st.dates(min_value=date(2000, 1, 1), max_value=date(2100, 1, 1)),
    st.integers(min_value=0, max_value=120),
)
def test_period_weeks_cover_the_period_exactly(start: date, length: int) -> None:
    end = start + timedelta(days=length)
    split = period_weeks(start, end)
    days: list[date] = []
    if split.whole_weeks is not None:
        first, last = split.whole_weeks
        assert first.weekday() == 0 and last.weekday() == 0 and start <= first <= last
        assert last + timedelta(days=6) <= end
        days += [first + timedelta(days=n) for n in range((last - first).days + 7)]
    for lo, hi in split.edge_days:
        assert lo <= hi
        days += [lo + timedelta(days=n) for n in range((hi - lo).days + 1)]
    assert sorted(days) == [start + timedelta(days=n) for n in range(length + 1)]
    # Edge days lie in weeks that are not wholly inside the period.
    for lo, hi in split.edge_days:
        for n in range((hi - lo).days + 1):
            monday = lo + timedelta(days=n) - timedelta(days=(lo + timedelta(days=n)).weekday())
            assert monday < start or monday + timedelta(days=6) > end


def test_period_weeks_examples() -> None:
    # 2026: Thursday 1 January to Thursday 31 December.
    assert period_weeks(date(2026, 1, 1), date(2026, 12, 31)) == PeriodWeeks(
        (date(2026, 1, 5), date(2026, 12, 21)),
        ((date(2026, 1, 1), date(2026, 1, 4)), (date(2026, 12, 28), date(2026, 12, 31))),
    )
    assert period_weeks(date(2026, 1, 5), date(2026, 1, 11)) == PeriodWeeks(
        (date(2026, 1, 5), date(2026, 1, 5)), ()
    )
    assert period_weeks(date(2026, 1, 6), date(2026, 1, 12)) == PeriodWeeks(
        None, ((date(2026, 1, 6), date(2026, 1, 12)),)
    )
