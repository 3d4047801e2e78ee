"""*Ditt likepersonsår*: one mentor's year in one read-only service call.

:func:`year_summary` is called by the CLI (``badges summary``) and the REST
API; its signature is a contract between the two.  The year is a local
calendar year (the configured timezone): activities count by their
``activity_date``, badges by ``earned_at`` converted to local time.

The tier shown is the one held in the award period that best covers the year
(see :func:`worker.model.tier_rules.covering_period`); eligibility towards the next
tier is measured inside that period's dates, exactly as the re-evaluation
measures it.  Badge progress is lifetime progress, as badge criteria are.
"""

from __future__ import annotations

from datetime import date, datetime, tzinfo
from uuid import UUID

from pydantic import Field
from sqlalchemy import Connection, select

from schema.tables import (
    daily_activity_counts,
    earned_badges,
    mentors,
    tier_assignments,
)
from worker.badges.awards import EarnedBadge, earned_by_mentor, enabled_definitions
from worker.core.clock import Clock, as_utc
from worker.core.models import FrozenModel
from worker.core.settings import get_settings
from worker.model.criteria import contains_raw, progress, streak_keys
from worker.model.streaks import Period, longest_streak
from worker.model.tier_rules import (
    DailyCount,
    covering_period,
    eligibility_towards_next,
    next_tier,
    window_stats,
)
from worker.model.tiers import TierEligibility, TierLevel
from worker.stats.counts import load_snapshots
from worker.tiers.store import load_tiers, organisation_periods


class MentorNotFound(LookupError):
    """No statistics and no badges are known for this mentor."""


class SummaryPeriod(FrozenModel):
    id: UUID
    name: str
    start_date: date
    end_date: date
    is_active: bool


class EarnedInYear(FrozenModel):
    id: UUID
    badge_definition_id: UUID
    code: str
    name: str
    earned_at: datetime


_IN_YEAR = set(EarnedInYear.model_fields)


class BadgeProgress(FrozenModel):
    """Progress towards one badge not yet earned, e.g. 7 of 10 activities."""

    badge_definition_id: UUID
    code: str
    name: str
    current: int
    target: int
    unit: str
    progress: float = Field(ge=0.0, le=1.0)


class YearSummary(FrozenModel):
    peer_mentor_id: UUID
    organisation_id: UUID
    year: int
    generated_at: datetime
    #: activity type -> live activities dated in the year
    activity_counts: dict[str, int]
    total_activities: int
    #: longest run of consecutive ISO weeks with an activity dated in the year
    longest_weekly_streak: int
    award_period: SummaryPeriod | None
    #: level name held in ``award_period`` ("gold"), or None
    tier: str | None
    tier_level: int | None
    next_tier: str | None
    #: eligibility for ``next_tier`` (for the held tier at the top), or None without tiers
    eligibility: TierEligibility | None
    progress_to_next_tier: float = Field(ge=0.0, le=1.0)
    #: badges earned in the year, oldest first
    badges: tuple[EarnedInYear, ...]
    #: enabled, automatically awarded badges not earned yet
    badge_progress: tuple[BadgeProgress, ...]


def year_summary(
    conn: Connection, mentor_id: UUID, year: int, *, clock: Clock, tz: tzinfo | None = None
) -> YearSummary:
    """The mentor's year (see module docstring); raises :class:`MentorNotFound`."""
    tz = get_settings().tz if tz is None else tz
    organisation_id = _organisation_of(conn, mentor_id)
    periods = organisation_periods(conn, organisation_id)
    period, window_start, window_end = covering_period(periods, year)
    first, last = date(year, 1, 1), date(year, 12, 31)
    daily = _daily_counts(conn, mentor_id, min(first, window_start), max(last, window_end))

    in_year = [d for d in daily if first <= d.day <= last]
    counts: dict[str, int] = {}
    for d in in_year:
        counts[d.activity_type] = counts.get(d.activity_type, 0) + d.count

    tiers = load_tiers(conn, [organisation_id])
    held = _held_tier(conn, mentor_id, period.id) if period is not None else None
    stats = {
        frozenset(t.activity_types): window_stats(daily, t.activity_types, window_start, window_end)
        for t in tiers
    }
    eligibility = eligibility_towards_next(tiers, held, stats)
    upcoming = next_tier(tiers, held)

    earned = earned_by_mentor(conn, mentor_id)
    return YearSummary(
        peer_mentor_id=mentor_id,
        organisation_id=organisation_id,
        year=year,
        generated_at=clock.now(),
        activity_counts=dict(sorted(counts.items())),
        total_activities=sum(counts.values()),
        longest_weekly_streak=longest_streak((d.day for d in in_year), Period.WEEK),
        award_period=None
        if period is None
        else SummaryPeriod(**period.model_dump(exclude={"organisation_id"})),
        tier=None if held is None else held.label,
        tier_level=None if held is None else int(held),
        next_tier=None if upcoming is None else upcoming.level.label,
        eligibility=eligibility,
        progress_to_next_tier=0.0 if eligibility is None else eligibility.progress_to_next_tier,
        badges=tuple(
            EarnedInYear.model_validate(e.model_dump(include=_IN_YEAR))
            for e in earned
            if _local_year(e, tz) == year
        ),
        badge_progress=_badge_progress(conn, mentor_id, organisation_id, earned),
    )


def _organisation_of(conn: Connection, mentor_id: UUID) -> UUID:
    org = conn.scalar(
        select(mentors.c.organisation_id).where(mentors.c.peer_mentor_id == mentor_id)
    )
    if org is None:
        org = conn.scalar(
            select(earned_badges.c.organisation_id)
            .where(earned_badges.c.peer_mentor_id == mentor_id)
            .limit(1)
        )
    if org is None:
        raise MentorNotFound(f"no activity or badges known for mentor {mentor_id}")
    return UUID(str(org))


def _daily_counts(conn: Connection, mentor_id: UUID, start: date, end: date) -> list[DailyCount]:
    d = daily_activity_counts.c
    rows = conn.execute(
        select(d.activity_date, d.activity_type, d.activity_count).where(
            d.peer_mentor_id == mentor_id,
            d.activity_date >= start,
            d.activity_date <= end,
            d.activity_count > 0,
        )
    )
    return [DailyCount(r.activity_date, r.activity_type, r.activity_count) for r in rows]


def _held_tier(conn: Connection, mentor_id: UUID, period_id: UUID) -> TierLevel | None:
    tier = conn.scalar(
        select(tier_assignments.c.tier).where(
            tier_assignments.c.peer_mentor_id == mentor_id,
            tier_assignments.c.award_period_id == period_id,
        )
    )
    return None if tier is None else TierLevel(tier)


def _local_year(earned: EarnedBadge, tz: tzinfo) -> int:
    return as_utc(earned.earned_at).astimezone(tz).year


def _badge_progress(
    conn: Connection, mentor_id: UUID, organisation_id: UUID, earned: list[EarnedBadge]
) -> tuple[BadgeProgress, ...]:
    held = {e.badge_definition_id for e in earned}
    pending = [
        d
        for d in enabled_definitions(conn, [organisation_id])
        if d.id not in held and not contains_raw(d.criteria)
    ]
    if not pending:
        return ()
    keys = set().union(*(streak_keys(d.criteria) for d in pending))
    snapshot = load_snapshots(conn, [mentor_id], keys)[mentor_id]
    result = []
    for d in pending:
        p = progress(d.criteria, snapshot)
        if p is None:
            continue
        result.append(
            BadgeProgress(
                badge_definition_id=d.id,
                code=d.code,
                name=d.name,
                current=p.current,
                target=p.target,
                unit=p.unit,
                progress=max(0.0, p.fraction),
            )
        )
    return tuple(result)
