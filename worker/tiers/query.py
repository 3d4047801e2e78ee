"""The set-based "highest tier per mentor" query (SQL construction, no execution).

:func:`highest_tiers` builds one SELECT that yields ``(peer_mentor_id, tier)``
for every candidate mentor inside an award period.  It renders on PostgreSQL
and SQLite alike (subqueries, ``CASE``, integer bit operators; the only
dialect difference is the bitwise-OR aggregate, see :func:`_bit_union`).

1. **Period rows**: the weekly rows of ``period_activity_counts`` for the ISO
   weeks lying wholly inside the period, plus the daily rows of
   ``daily_activity_counts`` for the (at most two) partial weeks at its
   edges, so a week cut by the boundary counts only its days inside
   (:func:`worker.model.tier_rules.period_weeks`).
2. **Per mentor, one aggregation**: per distinct activity-type filter of the
   tiers, the total and the set of active weeks.  For a period touching at
   most :data:`MASK_WEEKS` ISO weeks (a year touches 53) the set is a 64-bit
   integer with bit ``w`` for the period's ``w``-th week, and a tier's
   ``min_streak`` k holds iff ``m & m>>1 & … & m>>(k-1)`` is not zero: no
   sort, no window.  Longer periods fall back to gaps and islands with
   window functions over (mentor, week).
3. The tiers' thresholds as one ``CASE``, highest level first.

Full runs read the whole organisation (no semi-join on the candidates: every
mentor is one); incremental runs restrict the rows with ``IN (changed
mentors)``, a plain subquery the planner estimates from ``mentors``.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date
from typing import Any

from sqlalchemy import (
    Connection,
    and_,
    case,
    false,
    func,
    literal_column,
    null,
    or_,
    select,
    true,
    union_all,
)
from sqlalchemy.sql import Select
from sqlalchemy.sql.elements import ColumnElement

from schema.tables import daily_activity_counts, mentors, period_activity_counts
from worker.db.dates import week_number
from worker.db.engine import is_postgres
from worker.model.streaks import Period
from worker.model.tier_rules import TypeFilter, period_weeks, type_filters
from worker.model.tiers import RecognitionTier, TierAwardPeriod


def _int(value: int) -> ColumnElement[int]:
    # Validated integers, inlined: the statement text stays the same for a
    # given configuration and PostgreSQL matches repeated expressions.
    return literal_column(str(int(value)))


def candidate_mentors(period: TierAwardPeriod, since: Any = None) -> Any:
    """SELECT of the mentors to evaluate: the organisation's, changed after ``since``."""
    query = select(mentors.c.peer_mentor_id).where(
        mentors.c.organisation_id == period.organisation_id
    )
    if since is not None:
        query = query.where(mentors.c.stats_changed_at > since)
    return query


def period_rows(conn: Connection, period: TierAwardPeriod, since: Any = None) -> Any:
    """(peer_mentor_id, week_no, activity_type, activity_count) dated inside ``period``.

    Whole weeks come from the weekly totals, edge days from the daily rows.
    With ``since`` (an incremental run) only the changed mentors' rows.
    """
    split = period_weeks(period.start_date, period.end_date)
    changed = None if since is None else candidate_mentors(period, since)
    parts: list[Select[Any]] = []
    if split.whole_weeks is not None:
        first_week, last_week = split.whole_weeks
        w = period_activity_counts.c
        parts.append(
            _counts(
                conn,
                w,
                w.period_start,
                and_(
                    w.period == Period.WEEK.value,
                    w.period_start.between(first_week, last_week),
                ),
                period,
                changed,
            )
        )
    if split.edge_days:
        # One scan for both edges (the daily table has no index by date alone).
        d = daily_activity_counts.c
        edges: ColumnElement[bool] = or_(
            *[d.activity_date.between(first, last) for first, last in split.edge_days]
        )
        parts.append(_counts(conn, d, d.activity_date, edges, period, changed))
    return (union_all(*parts) if len(parts) > 1 else parts[0]).subquery("period_rows")


def _counts(
    conn: Connection,
    c: Any,
    day: Any,
    dated: ColumnElement[bool],
    period: TierAwardPeriod,
    changed: Any,
) -> Select[Any]:
    """(peer_mentor_id, week_no, activity_type, activity_count) of one counts table."""
    part = select(
        c.peer_mentor_id,
        week_number(conn, day).label("week_no"),
        c.activity_type,
        c.activity_count,
    ).where(c.organisation_id == period.organisation_id, dated, c.activity_count > 0)
    if changed is not None:
        part = part.where(c.peer_mentor_id.in_(changed))
    return part


#: Periods spanning at most this many ISO weeks get their weeks as bits of a
#: 64-bit integer (bit 63 stays clear: both dialects' integers are signed).
MASK_WEEKS = 63


def highest_tiers(
    conn: Connection,
    period: TierAwardPeriod,
    tiers: Sequence[RecognitionTier],
    *,
    since: Any = None,
) -> Any:
    """A subquery: (peer_mentor_id, tier) for every candidate; tier 0 = none reached.

    Candidates are the organisation's mentors, only those whose stats changed
    after ``since`` when given (see :func:`candidate_mentors`).
    """
    filters = type_filters(tiers)
    rows = period_rows(conn, period, since)
    first_week, weeks = week_span(period.start_date, period.end_date)
    streaks: _Streaks
    if weeks <= MASK_WEEKS:
        streaks = _WeekMasks(conn, rows, filters, first_week, weeks)
    else:
        streaks = _WeekRuns(rows, filters)
    per_mentor = streaks.per_mentor
    candidates = candidate_mentors(period, since).subquery("candidates")
    whens = []
    for t in sorted(tiers, key=lambda t: t.level, reverse=True):
        i = filters.index(frozenset(t.activity_types))
        total = func.coalesce(per_mentor.c[f"total{i}"], _int(0))
        whens.append(
            (
                and_(total >= _int(t.min_assignments), streaks.reaches(i, t.min_streak)),
                _int(int(t.level)),
            )
        )
    return (
        select(candidates.c.peer_mentor_id, case(*whens, else_=_int(0)).label("tier"))
        .select_from(
            candidates.outerjoin(
                per_mentor, per_mentor.c.peer_mentor_id == candidates.c.peer_mentor_id
            )
        )
        .subquery("best")
    )


def week_span(start: date, end: date) -> tuple[int, int]:
    """(week number of ``start``, number of ISO weeks that [start, end] touches)."""
    first = (start - _EPOCH).days // 7
    return first, (end - _EPOCH).days // 7 - first + 1


_EPOCH = date(1, 1, 1)  # a Monday, as in worker.db.dates


def _qualifies(rows: Any, types: TypeFilter) -> ColumnElement[bool]:
    return rows.c.activity_type.in_(sorted(types)) if types else true()


class _Streaks:
    """Per mentor: ``total{i}`` per filter, and whether a streak of k weeks is reached."""

    per_mentor: Any

    def reaches(self, i: int, weeks: int) -> ColumnElement[bool]:
        raise NotImplementedError


class _WeekMasks(_Streaks):
    """Short periods: the active weeks of each filter as the bits of one integer.

    One aggregation per mentor, no sort: bit ``w`` is set when the period's
    ``w``-th week had a qualifying activity (PostgreSQL ``bit_or``; SQLite
    sums the distinct powers of two).  A run of k consecutive weeks exists
    iff ``m & m>>1 & … & m>>(k-1)`` is not zero.
    """

    def __init__(
        self, conn: Connection, rows: Any, filters: list[TypeFilter], first_week: int, weeks: int
    ) -> None:
        self.weeks = weeks
        bit = _ONE.op("<<")(rows.c.week_no - _int(first_week))
        self.per_mentor = (
            select(
                rows.c.peer_mentor_id,
                *(
                    func.sum(case((_qualifies(rows, t), rows.c.activity_count), else_=0)).label(
                        f"total{i}"
                    )
                    for i, t in enumerate(filters)
                ),
                *(
                    _bit_union(conn, case((_qualifies(rows, t), bit), else_=null())).label(
                        f"mask{i}"
                    )
                    for i, t in enumerate(filters)
                ),
            )
            .group_by(rows.c.peer_mentor_id)
            .subquery("per_mentor")
        )

    def reaches(self, i: int, weeks: int) -> ColumnElement[bool]:
        if weeks <= 0:
            return true()
        if weeks > self.weeks:
            return false()
        mask = self.per_mentor.c[f"mask{i}"]
        run: ColumnElement[Any] = mask
        for shift in range(1, weeks):
            run = run.op("&")(mask.op(">>")(_int(shift)))
        return run != _int(0)


_ONE: ColumnElement[int] = literal_column("CAST(1 AS BIGINT)")


def _bit_union(conn: Connection, bits: ColumnElement[Any]) -> ColumnElement[Any]:
    if is_postgres(conn):
        return func.bit_or(bits)
    # One power of two per week: equal ones are the same week, so DISTINCT.
    return func.sum(bits.distinct())


class _WeekRuns(_Streaks):
    """Long periods: gaps and islands with window functions over (mentor, week).

    Per mentor and week one row with a count per filter; per filter the
    running number of active weeks; an active week starts a run unless the
    previous row is the week before and was active for the filter; the
    running count at the latest run start gives each week's run length.
    """

    def __init__(self, rows: Any, filters: list[TypeFilter]) -> None:
        weekly = (
            select(
                rows.c.peer_mentor_id,
                rows.c.week_no,
                *(
                    func.sum(case((_qualifies(rows, t), rows.c.activity_count), else_=0)).label(
                        f"n{i}"
                    )
                    for i, t in enumerate(filters)
                ),
            )
            .group_by(rows.c.peer_mentor_id, rows.c.week_no)
            .subquery("weekly")
        )
        window = _by_week(weekly)
        counted: list[Any] = [func.lag(weekly.c.week_no).over(**window).label("prev_week")]
        for i in range(len(filters)):
            n = weekly.c[f"n{i}"]
            counted += [
                func.sum(case((n > 0, 1), else_=0)).over(**window).label(f"rank{i}"),
                func.lag(n).over(**window).label(f"prev_n{i}"),
            ]
        ranked = select(weekly, *counted).subquery("ranked")
        runs = []
        for i in range(len(filters)):
            n, rank, prev_n = (ranked.c[f"{name}{i}"] for name in ("n", "rank", "prev_n"))
            continues_run = and_(ranked.c.prev_week == ranked.c.week_no - _int(1), prev_n > 0)
            starts_run = and_(n > 0, or_(ranked.c.prev_week.is_(None), ~continues_run))
            runs.append(
                func.max(case((starts_run, rank), else_=null()))
                .over(**_by_week(ranked))
                .label(f"run_start{i}")
            )
        started = select(ranked, *runs).subquery("started")
        c = started.c
        self.per_mentor = (
            select(
                c.peer_mentor_id,
                *(func.sum(c[f"n{i}"]).label(f"total{i}") for i in range(len(filters))),
                *(
                    func.max(
                        case(
                            (c[f"n{i}"] > 0, c[f"rank{i}"] - c[f"run_start{i}"] + _int(1)),
                            else_=0,
                        )
                    ).label(f"longest{i}")
                    for i in range(len(filters))
                ),
            )
            .group_by(c.peer_mentor_id)
            .subquery("per_mentor")
        )

    def reaches(self, i: int, weeks: int) -> ColumnElement[bool]:
        return func.coalesce(self.per_mentor.c[f"longest{i}"], _int(0)) >= _int(weeks)


def _by_week(subquery: Any) -> dict[str, Any]:
    """One window for every step: each mentor's weeks in order (one sort)."""
    return {"partition_by": subquery.c.peer_mentor_id, "order_by": subquery.c.week_no}
