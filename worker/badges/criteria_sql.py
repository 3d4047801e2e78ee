"""Badge criteria compiled to SQL over the incremental stats tables: every mentor at once.

* ``threshold``: the mentor's lifetime count over the types
  (``mentor_activity_counts``, grouped, ``HAVING sum >= min_count``);
* ``streak``: the longest run of consecutive active periods in
  ``period_activity_counts`` (gaps and islands: a period's number minus its
  rank is constant along a run);
* ``training_completion``: every course in ``completed_courses``;
* ``tier``: the highest tier held in ``tier_assignments``;
* ``all_of`` / ``any_of``: AND / OR of the parts.

Each leaf is ``peer_mentor_id IN (SELECT … GROUP BY … HAVING …)``; ``raw``
criteria are never met (they are awarded only by hand).  The same rules as
:func:`worker.model.criteria.evaluate` on one mentor's snapshot (a property
test compares them).
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any
from uuid import UUID

from sqlalchemy import Connection, and_, false, func, or_, select, true
from sqlalchemy.sql.elements import ColumnElement

from schema.tables import (
    completed_courses,
    mentor_activity_counts,
    period_activity_counts,
    tier_assignments,
)
from worker.db.dates import month_number, week_number
from worker.model.criteria import (
    AllOfCriterion,
    AnyOfCriterion,
    Criteria,
    RawCriterion,
    StreakCriterion,
    ThresholdCriterion,
    TierCriterion,
    TrainingCompletionCriterion,
)
from worker.model.streaks import Period

#: A range of mentor ids (inclusive) to limit the statements to, or None: all.
Bounds = tuple[UUID, UUID] | None


def _within(column: Any, bounds: Bounds) -> ColumnElement[bool]:
    if bounds is None:
        return true()
    between: ColumnElement[bool] = column.between(*bounds)
    return between


def _types(column: Any, types: Collection[str]) -> ColumnElement[bool]:
    return column.in_(sorted(set(types))) if types else true()


def _qualifying(conn: Connection, criterion: Criteria, org: UUID, bounds: Bounds) -> Any:
    """SELECT peer_mentor_id of the organisation's mentors meeting a leaf criterion."""
    match criterion:
        case ThresholdCriterion():
            c = mentor_activity_counts.c
            return (
                select(c.peer_mentor_id)
                .where(
                    c.organisation_id == org,
                    _within(c.peer_mentor_id, bounds),
                    _types(c.activity_type, criterion.activity_types),
                    c.activity_count > 0,
                )
                .group_by(c.peer_mentor_id)
                .having(func.sum(c.activity_count) >= criterion.min_count)
            )
        case StreakCriterion():
            return _streak_reached(conn, criterion, org, bounds)
        case TrainingCompletionCriterion():
            c = completed_courses.c
            courses = sorted(set(criterion.course_ids))
            return (
                select(c.peer_mentor_id)
                .where(
                    c.organisation_id == org,
                    _within(c.peer_mentor_id, bounds),
                    c.course_id.in_(courses),
                    c.activity_count > 0,
                )
                .group_by(c.peer_mentor_id)
                .having(func.count(c.course_id.distinct()) >= len(courses))
            )
        case TierCriterion():
            t = tier_assignments.c
            return select(t.peer_mentor_id).where(
                t.organisation_id == org,
                _within(t.peer_mentor_id, bounds),
                t.tier >= int(criterion.min_tier),
            )
    raise TypeError(f"not a leaf criterion: {criterion!r}")  # pragma: no cover


def _streak_reached(conn: Connection, criterion: StreakCriterion, org: UUID, bounds: Bounds) -> Any:
    """Mentors with ``min_length`` consecutive active periods (gaps and islands)."""
    p = period_activity_counts.c
    number = (
        week_number(conn, p.period_start)
        if criterion.period is Period.WEEK
        else month_number(conn, p.period_start)
    )
    active = (
        select(p.peer_mentor_id, number.label("n"))
        .where(
            p.organisation_id == org,
            _within(p.peer_mentor_id, bounds),
            p.period == criterion.period.value,
            _types(p.activity_type, criterion.activity_types),
            p.activity_count > 0,
        )
        .distinct()
        .subquery("active")
    )
    rank = func.row_number().over(partition_by=active.c.peer_mentor_id, order_by=active.c.n)
    islands = select(active.c.peer_mentor_id, (active.c.n - rank).label("island")).subquery(
        "islands"
    )
    return (
        select(islands.c.peer_mentor_id)
        .group_by(islands.c.peer_mentor_id, islands.c.island)
        .having(func.count() >= criterion.min_length)
    )


def meets(
    conn: Connection, criteria: Criteria, mentor: Any, org: UUID, bounds: Bounds = None
) -> ColumnElement[bool]:
    """A predicate: the mentor in column ``mentor`` meets ``criteria`` (``raw``: never)."""
    match criteria:
        case AllOfCriterion():
            return and_(*(meets(conn, c, mentor, org, bounds) for c in criteria.criteria))
        case AnyOfCriterion():
            return or_(*(meets(conn, c, mentor, org, bounds) for c in criteria.criteria))
        case RawCriterion():
            return false()
    result: ColumnElement[bool] = mentor.in_(_qualifying(conn, criteria, org, bounds))
    return result
