from __future__ import annotations

from datetime import date, timedelta

from hypothesis import given
from hypothesis import strategies as st

from worker.model.streaks import Period, longest_streak, period_start


def test_iso_weeks_start_on_monday() -> None:
    assert period_start(date(2026, 3, 1), Period.WEEK) == date(2026, 2, 23)  # Sunday
    assert period_start(date(2026, 3, 2), Period.WEEK) == date(2026, 3, 2)  # Monday
    assert period_start(date(2026, 3, 31), Period.MONTH) == date(2026, 3, 1)


def test_weekly_streak_across_a_year_boundary() -> None:
    days = [date(2025, 12, 22), date(2025, 12, 31), date(2026, 1, 5), date(2026, 1, 19)]
    assert longest_streak(days, Period.WEEK) == 3


def test_sunday_and_next_monday_are_two_weeks() -> None:
    assert longest_streak([date(2026, 3, 1), date(2026, 3, 2)], Period.WEEK) == 2
    assert longest_streak([date(2026, 3, 2), date(2026, 3, 8)], Period.WEEK) == 1


def test_monthly_streak_counts_calendar_months() -> None:
    days = [date(2026, 1, 31), date(2026, 2, 1), date(2026, 3, 15), date(2026, 5, 1)]
    assert longest_streak(days, Period.MONTH) == 3


def test_empty_is_zero() -> None:
    assert longest_streak([], Period.WEEK) == 0


def _naive_weekly(days: list[date]) -> int:
    """A second, deliberately simple formulation: walk week by week."""
    if not days:
        return 0
    weeks = {d - timedelta(days=d.weekday()) for d in days}
    best = 0
    for week in weeks:
        length = 0
        while week + timedelta(weeks=length) in weeks:
            length += 1
        best = max(best, length)
    return best


@given(st.lists(st.dates(min_value=date(2020, 1, 1), max_value=date(2027, 12, 31)), max_size=60))
def test_weekly_streak_matches_a_naive_walk(days: list[date]) -> None:
    assert longest_streak(days, Period.WEEK) == _naive_weekly(days)


@given(st.lists(st.dates(min_value=date(2020, 1, 1), max_value=date(2027, 12, 31)), max_size=60))
def test_streak_ignores_order_and_duplicates(days: list[date]) -> None:
    assert longest_streak(days + days[::-1], Period.MONTH) == longest_streak(days, Period.MONTH)
