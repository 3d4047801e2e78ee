"""Pure rules shared by tier re-evaluation and the year summary.

No SQL here: these take plain values (tiers, periods, per-day counts) and
return plain values, so the boundaries are unit-tested in milliseconds.

*Inside a period* means: activities whose local ``activity_date`` lies in the
closed range [start, end].  Their weekly streak groups those dates by ISO week
(Monday to Sunday); a week cut by the period boundary counts when it has an
activity on one of its days inside the range.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, timedelta

from worker.model.streaks import Period, longest_streak
from worker.model.tiers import RecognitionTier, TierAwardPeriod, TierEligibility, TierLevel

TypeFilter = frozenset[str]  # empty = every activity type


def config_fingerprint(period: TierAwardPeriod, tiers: Iterable[RecognitionTier]) -> str:
    """A digest of what decides tiers in ``period``: its dates and the tier thresholds.

    When it differs from the one stored with the previous run, every mentor of
    the organisation is re-evaluated, not only those whose stats changed.
    """
    document = {
        "start_date": period.start_date.isoformat(),
        "end_date": period.end_date.isoformat(),
        "tiers": [
            [int(t.level), t.min_assignments, t.min_streak, sorted(set(t.activity_types))]
            for t in sorted(tiers, key=lambda t: t.level)
        ],
    }
    return hashlib.sha256(json.dumps(document, sort_keys=True).encode()).hexdigest()


def type_filters(tiers: Iterable[RecognitionTier]) -> list[TypeFilter]:
    """The distinct activity-type filters of ``tiers``, in a stable order.

    Tiers usually share one filter; each distinct filter costs the SQL one
    pass over the period's daily counts, so equal filters are computed once.
    """
    return sorted({frozenset(t.activity_types) for t in tiers}, key=lambda f: sorted(f))


@dataclass(frozen=True)
class PeriodWeeks:
    """How an award period splits into whole ISO weeks and the days around them.

    ``whole_weeks`` is the (first, last) Monday of the weeks lying wholly inside
    the period, or None when there is none; ``edge_days`` are the inclusive
    date ranges of the period outside those weeks (at most two: the partial
    weeks at the start and at the end, or the whole period when it covers no
    whole week).  Weekly totals may stand in for the days of a whole week;
    only the edge days must be read day by day to count exactly the activity
    dated inside the period.
    """

    whole_weeks: tuple[date, date] | None
    edge_days: tuple[tuple[date, date], ...]


def period_weeks(start: date, end: date) -> PeriodWeeks:
    """Split [start, end] into whole ISO weeks (Monday to Sunday) and edge days."""
    first = start + timedelta(days=(7 - start.weekday()) % 7)  # first Monday >= start
    last = end - timedelta(days=(end.weekday() + 1) % 7) - timedelta(days=6)  # last whole week
    if first > last:
        return PeriodWeeks(None, ((start, end),) if start <= end else ())
    edges = []
    if start < first:
        edges.append((start, first - timedelta(days=1)))
    if last + timedelta(days=6) < end:
        edges.append((last + timedelta(days=7), end))
    return PeriodWeeks((first, last), tuple(edges))


def next_tier(tiers: Iterable[RecognitionTier], held: TierLevel | None) -> RecognitionTier | None:
    """The lowest configured tier above ``held`` (the lowest tier when none is held)."""
    above = [t for t in tiers if held is None or t.level > held]
    return min(above, key=lambda t: t.level, default=None)


@dataclass(frozen=True)
class WindowStats:
    """A mentor's activity inside a date window, for one activity-type filter."""

    count: int
    longest_weekly_streak: int


@dataclass(frozen=True)
class DailyCount:
    day: date
    activity_type: str
    count: int


def window_stats(
    daily: Iterable[DailyCount], activity_types: Iterable[str], start: date, end: date
) -> WindowStats:
    """Count and longest ISO-week streak of the activities dated in [start, end]."""
    wanted = frozenset(activity_types)
    inside = [
        d
        for d in daily
        if start <= d.day <= end and d.count > 0 and (not wanted or d.activity_type in wanted)
    ]
    return WindowStats(
        count=sum(d.count for d in inside),
        longest_weekly_streak=longest_streak((d.day for d in inside), Period.WEEK),
    )


def eligibility_towards_next(
    tiers: Sequence[RecognitionTier], held: TierLevel | None, stats: dict[TypeFilter, WindowStats]
) -> TierEligibility | None:
    """TierEligibility for the next tier above ``held``, from stats per type filter.

    ``stats`` must hold every filter of ``tiers``.  At the top (no tier above
    ``held``) the result describes the held tier with progress 1.0; with no
    tiers configured there is nothing to describe (None).
    """
    target = next_tier(tiers, held)
    if target is None:
        top = next((t for t in tiers if t.level == held), None)
        if top is None:
            return None
        s = stats[frozenset(top.activity_types)]
        reached = top.eligibility(s.count, s.longest_weekly_streak)
        return reached.model_copy(update={"progress_to_next_tier": 1.0})
    s = stats[frozenset(target.activity_types)]
    return target.eligibility(s.count, s.longest_weekly_streak)


def covering_period(
    periods: Iterable[TierAwardPeriod], year: int
) -> tuple[TierAwardPeriod | None, date, date]:
    """The award period that best covers ``year``, and the window to measure in.

    Among periods overlapping the calendar year, prefer the active flag, then
    the largest overlap, then the later end.  Without one the window is the
    calendar year itself.
    """
    first, last = date(year, 1, 1), date(year, 12, 31)

    def overlap(p: TierAwardPeriod) -> int:
        return (min(p.end_date, last) - max(p.start_date, first)).days + 1

    candidates = [p for p in periods if overlap(p) > 0]
    if not candidates:
        return None, first, last
    best = max(candidates, key=lambda p: (p.is_active, overlap(p), p.end_date, str(p.id)))
    return best, best.start_date, best.end_date
