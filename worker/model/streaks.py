"""Pure period and streak arithmetic.

A *period* is an ISO week (Monday to Sunday) or a calendar month, named by its
first day.  Activity dates are local calendar dates as the producer recorded
them, so no timezone conversion happens here.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date, timedelta
from enum import StrEnum


class Period(StrEnum):
    WEEK = "week"
    MONTH = "month"


def period_start(day: date, period: Period) -> date:
    """The first day of the week (Monday) or month that contains ``day``."""
    if period is Period.WEEK:
        return day - timedelta(days=day.weekday())
    return day.replace(day=1)


def _period_index(start: date, period: Period) -> int:
    """A number that grows by exactly one from one period to the next."""
    if period is Period.WEEK:
        return start.toordinal() // 7
    return start.year * 12 + start.month - 1


def longest_streak(active_period_starts: Iterable[date], period: Period) -> int:
    """Length of the longest run of consecutive active periods.

    ``active_period_starts`` may be unsorted, contain duplicates, or contain
    any day inside a period; each is normalised to its period first.
    """
    indexes = sorted({_period_index(period_start(d, period), period) for d in active_period_starts})
    best = run = 0
    previous: int | None = None
    for index in indexes:
        run = run + 1 if previous is not None and index == previous + 1 else 1
        best = max(best, run)
        previous = index
    return best
