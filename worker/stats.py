"""Incremental per-mentor statistics (SQL): apply deltas, load snapshots.

Every change is an atomic ``count = count + delta`` upsert, so concurrent
writers never lose an increment; rows that fall to zero are removed by key.
Nothing here scans a mentor's activity history: lifetime counts come from
``mentor_activity_counts`` and streaks from the distinct active periods in
``period_activity_counts`` (a few hundred rows at most per mentor and kind).
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Collection, Iterable, Mapping
from datetime import date, datetime
from typing import Any
from uuid import UUID

from sqlalchemy import Connection, Table, and_, func, select, tuple_

from schema.tables import (
    completed_courses,
    daily_activity_counts,
    mentor_activity_counts,
    mentors,
    period_activity_counts,
    tier_assignments,
)
from worker.criteria import MentorStats, StreakKey
from worker.ledger import StatsDelta
from worker.sql import insert_for
from worker.streaks import Period, longest_streak
from worker.tiers import TierLevel

_BATCH = 1000


def _add_counts(
    conn: Connection, table: Table, key_columns: tuple[str, ...], deltas: Counter[Any]
) -> None:
    if not deltas:
        return
    rows = [
        {
            "organisation_id": key[0],
            **dict(zip(key_columns, key[1:], strict=True)),
            "activity_count": n,
        }
        for key, n in sorted(deltas.items(), key=lambda item: tuple(str(k) for k in item[0]))
    ]
    pk = [table.c["peer_mentor_id"], *(table.c[c] for c in key_columns[1:])]
    for start in range(0, len(rows), _BATCH):
        stmt = insert_for(conn, table).values(rows[start : start + _BATCH])
        stmt = stmt.on_conflict_do_update(
            index_elements=pk,
            set_={"activity_count": table.c.activity_count + stmt.excluded.activity_count},
        )
        conn.execute(stmt)
    emptied = [key[1:] for key, n in deltas.items() if n < 0]
    if emptied:
        columns = tuple_(*(table.c[c] for c in key_columns))
        for start in range(0, len(emptied), _BATCH):
            conn.execute(
                table.delete().where(
                    and_(columns.in_(emptied[start : start + _BATCH]), table.c.activity_count <= 0)
                )
            )


def apply_delta(conn: Connection, delta: StatsDelta, now: datetime) -> None:
    """Apply signed deltas to all aggregate tables and mark the mentors changed."""
    delta.prune()
    _add_counts(conn, mentor_activity_counts, ("peer_mentor_id", "activity_type"), delta.lifetime)
    _add_counts(
        conn,
        daily_activity_counts,
        ("peer_mentor_id", "activity_date", "activity_type"),
        delta.daily,
    )
    _add_counts(
        conn,
        period_activity_counts,
        ("peer_mentor_id", "period", "period_start", "activity_type"),
        delta.periods,
    )
    _add_counts(conn, completed_courses, ("peer_mentor_id", "course_id"), delta.courses)
    touched = sorted({(k[0], k[1]) for k in delta.lifetime} | {(k[0], k[1]) for k in delta.courses})
    mark_mentors_changed(conn, touched, now)


def mark_mentors_changed(
    conn: Connection, mentor_orgs: Iterable[tuple[UUID, UUID]], now: datetime
) -> None:
    rows = [
        {"organisation_id": org, "peer_mentor_id": mentor, "stats_changed_at": now}
        for org, mentor in mentor_orgs
    ]
    if not rows:
        return
    stmt = insert_for(conn, mentors).values(rows)
    conn.execute(
        stmt.on_conflict_do_update(
            index_elements=[mentors.c.peer_mentor_id],
            set_={"stats_changed_at": stmt.excluded.stats_changed_at},
        )
    )


def load_snapshots(
    conn: Connection,
    mentor_ids: Collection[UUID],
    streak_keys: Collection[StreakKey],
    *,
    period_range: tuple[date, date] | None = None,
) -> dict[UUID, MentorStats]:
    """Snapshots for ``mentor_ids`` with the streaks named by ``streak_keys``.

    A handful of statements for the whole set of mentors, however many
    activities they have.
    """
    ids = sorted(set(mentor_ids))
    if not ids:
        return {}
    counts: dict[UUID, dict[str, int]] = defaultdict(dict)
    courses: dict[UUID, set[str]] = defaultdict(set)
    tiers: dict[UUID, TierLevel] = {}
    active: dict[tuple[UUID, str], list[tuple[date, str]]] = defaultdict(list)
    for chunk in _chunks(ids):
        for mentor, kind, n in conn.execute(
            select(
                mentor_activity_counts.c.peer_mentor_id,
                mentor_activity_counts.c.activity_type,
                mentor_activity_counts.c.activity_count,
            ).where(mentor_activity_counts.c.peer_mentor_id.in_(chunk))
        ):
            if n > 0:
                counts[mentor][kind] = n
        for mentor, course in conn.execute(
            select(completed_courses.c.peer_mentor_id, completed_courses.c.course_id).where(
                completed_courses.c.peer_mentor_id.in_(chunk),
                completed_courses.c.activity_count > 0,
            )
        ):
            courses[mentor].add(course)
        for mentor, tier in conn.execute(
            select(tier_assignments.c.peer_mentor_id, func.max(tier_assignments.c.tier))
            .where(tier_assignments.c.peer_mentor_id.in_(chunk))
            .group_by(tier_assignments.c.peer_mentor_id)
        ):
            tiers[mentor] = TierLevel(tier)
        periods = sorted({key[0].value for key in streak_keys})
        if periods:
            query = select(
                period_activity_counts.c.peer_mentor_id,
                period_activity_counts.c.period,
                period_activity_counts.c.period_start,
                period_activity_counts.c.activity_type,
            ).where(
                period_activity_counts.c.peer_mentor_id.in_(chunk),
                period_activity_counts.c.period.in_(periods),
                period_activity_counts.c.activity_count > 0,
            )
            if period_range is not None:
                query = query.where(period_activity_counts.c.period_start.between(*period_range))
            for mentor, period, start, kind in conn.execute(query):
                active[(mentor, period)].append((start, kind))
    return {
        mentor: MentorStats(
            counts=counts.get(mentor, {}),
            streaks=_streaks(mentor, streak_keys, active),
            completed_courses=frozenset(courses.get(mentor, ())),
            highest_tier=tiers.get(mentor),
        )
        for mentor in ids
    }


def _streaks(
    mentor: UUID,
    keys: Collection[StreakKey],
    active: Mapping[tuple[UUID, str], list[tuple[date, str]]],
) -> dict[StreakKey, int]:
    result = {}
    for period, types in keys:
        starts = [
            start
            for start, kind in active.get((mentor, period.value), ())
            if not types or kind in types
        ]
        result[(period, types)] = longest_streak(starts, Period(period))
    return result


def _chunks(ids: list[UUID], size: int = _BATCH) -> Iterable[list[UUID]]:
    for start in range(0, len(ids), size):
        yield ids[start : start + size]
