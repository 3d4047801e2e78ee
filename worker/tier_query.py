"""The set-based "highest tier per mentor" query (SQL construction, no execution).

:func:`highest_tiers` builds one SELECT over ``daily_activity_counts`` that
yields ``(peer_mentor_id, tier)`` for every candidate mentor meeting at least
one tier inside an award period.  It renders on PostgreSQL and SQLite alike
(CTEs and ``ROW_NUMBER`` exist in both; no ``VALUES`` aliases, no JSON
functions): tier thresholds are inlined as a tiny ``UNION ALL`` relation,
activity-type filters as one branch per distinct filter.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Connection, and_, func, literal, literal_column, select, true, union_all
from sqlalchemy.sql.elements import ColumnElement

from schema.tables import daily_activity_counts
from worker.db import is_postgres
from worker.sql_dates import week_number
from worker.tier_rules import TypeFilter, type_filters
from worker.tiers import RecognitionTier, TierAwardPeriod


def highest_tiers(
    conn: Connection,
    period: TierAwardPeriod,
    tiers: Sequence[RecognitionTier],
    candidates: Any,
) -> Any:
    """A subquery: (peer_mentor_id, tier) = the highest tier whose both thresholds hold."""
    filters = type_filters(tiers)
    daily = daily_activity_counts.c
    branches = []
    for number, types in enumerate(filters):
        branch = select(
            literal_column(str(number)).label("filter_no"),
            daily.peer_mentor_id,
            daily.activity_date,
            daily.activity_count,
        ).where(
            daily.organisation_id == period.organisation_id,
            daily.activity_date >= period.start_date,
            daily.activity_date <= period.end_date,
            daily.activity_count > 0,
            daily.peer_mentor_id.in_(select(candidates.c.peer_mentor_id)),
        )
        if types:
            branch = branch.where(daily.activity_type.in_(sorted(types)))
        branches.append(branch)
    qualifying = union_all(*branches).cte("qualifying")
    q = qualifying.c

    totals = (
        select(q.filter_no, q.peer_mentor_id, func.sum(q.activity_count).label("total"))
        .group_by(q.filter_no, q.peer_mentor_id)
        .cte("totals")
    )
    weeks = (
        select(q.filter_no, q.peer_mentor_id, week_number(conn, q.activity_date).label("week_no"))
        .distinct()
        .cte("weeks")
    )
    # Gaps and islands: within a run of consecutive weeks, week_no minus its
    # rank is constant, so each island is one group.
    islands = select(
        weeks.c.filter_no,
        weeks.c.peer_mentor_id,
        (
            weeks.c.week_no
            - func.row_number().over(
                partition_by=(weeks.c.filter_no, weeks.c.peer_mentor_id),
                order_by=weeks.c.week_no,
            )
        ).label("island"),
    ).cte("islands")
    runs = (
        select(islands.c.filter_no, islands.c.peer_mentor_id, func.count().label("run_length"))
        .group_by(islands.c.filter_no, islands.c.peer_mentor_id, islands.c.island)
        .cte("runs")
    )
    streaks = (
        select(
            runs.c.filter_no, runs.c.peer_mentor_id, func.max(runs.c.run_length).label("longest")
        )
        .group_by(runs.c.filter_no, runs.c.peer_mentor_id)
        .cte("streaks")
    )
    thresholds = _thresholds(tiers, filters)

    total = func.coalesce(totals.c.total, 0)
    longest = func.coalesce(streaks.c.longest, 0)
    return (
        select(candidates.c.peer_mentor_id, func.max(thresholds.c.level).label("tier"))
        .select_from(
            candidates.join(thresholds, true())
            .outerjoin(
                totals,
                and_(
                    totals.c.peer_mentor_id == candidates.c.peer_mentor_id,
                    totals.c.filter_no == thresholds.c.filter_no,
                ),
            )
            .outerjoin(
                streaks,
                and_(
                    streaks.c.peer_mentor_id == candidates.c.peer_mentor_id,
                    streaks.c.filter_no == thresholds.c.filter_no,
                ),
            )
        )
        .where(total >= thresholds.c.min_assignments, longest >= thresholds.c.min_streak)
        .group_by(candidates.c.peer_mentor_id)
        .subquery("best")
    )


def _thresholds(tiers: Sequence[RecognitionTier], filters: list[TypeFilter]) -> Any:
    """The organisation's tiers as a small inline relation (one row per tier).

    Values are validated integers, rendered inline: a literal row set works
    alike on both dialects (SQLite has no ``VALUES … AS t(columns)``).
    """
    rows: list[Any] = [
        select(
            literal_column(str(int(t.level))).label("level"),
            literal_column(str(filters.index(frozenset(t.activity_types)))).label("filter_no"),
            literal_column(str(int(t.min_assignments))).label("min_assignments"),
            literal_column(str(int(t.min_streak))).label("min_streak"),
        )
        for t in tiers
    ]
    return union_all(*rows).cte("thresholds")


def new_uuid(conn: Connection) -> ColumnElement[Any]:
    """A random (version 4) UUID generated by the database, one per row."""
    if is_postgres(conn):
        return func.gen_random_uuid()
    # SQLite stores UUIDs as 32 hex digits; assemble a version-4 one.
    hexes = [func.lower(func.hex(func.randomblob(n))) for n in (6, 2, 2, 6)]
    variant = func.substr("89ab", 1 + func.abs(func.random()) % 4, 1)
    return (
        hexes[0]
        + literal("4")
        + func.substr(hexes[1], 2)
        + variant
        + func.substr(hexes[2], 2)
        + hexes[3]
    )
