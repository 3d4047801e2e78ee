"""Incremental per-mentor statistics (SQL): apply deltas, load snapshots.

Every change is an atomic ``count = count + delta`` upsert, so concurrent
writers never lose an increment; rows that fall to zero are removed by key.
Nothing here scans a mentor's activity history: lifetime counts come from
``mentor_activity_counts`` and streaks from the distinct active periods in
``period_activity_counts`` (a few hundred rows at most per mentor and kind).
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Collection, Iterable, Mapping, Sequence
from datetime import date, datetime
from typing import Any
from uuid import UUID

from sqlalchemy import (
    Connection,
    Select,
    Table,
    and_,
    func,
    literal,
    literal_column,
    select,
    tuple_,
    union_all,
)

from schema.tables import (
    activity_ledger,
    completed_courses,
    daily_activity_counts,
    mentor_activity_counts,
    mentors,
    period_activity_counts,
    tier_assignments,
)
from worker.core.models import batches
from worker.db.dates import month_start, week_start
from worker.db.sql import in_values, insert_for
from worker.model.criteria import MentorStats, StreakKey
from worker.model.events import TRAINING_COMPLETED
from worker.model.ledger import StatsDelta
from worker.model.streaks import Period, longest_streak
from worker.model.tiers import TierLevel


def _add_counts(
    conn: Connection, table: Table, key_columns: tuple[str, ...], deltas: Counter[Any]
) -> None:
    deltas = Counter({key: n for key, n in deltas.items() if n})
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
    # One cached statement, executed for all rows: SQLAlchemy batches the
    # parameters into multi-row VALUES ("insertmanyvalues") without recompiling.
    stmt = insert_for(conn, table)
    stmt = stmt.on_conflict_do_update(
        index_elements=pk,
        set_={"activity_count": table.c.activity_count + stmt.excluded.activity_count},
    )
    conn.execute(stmt, rows)
    emptied = [key[1:] for key, n in deltas.items() if n < 0]
    if emptied:
        columns = tuple_(*(table.c[c] for c in key_columns))
        for batch in batches(emptied):
            conn.execute(
                table.delete().where(and_(columns.in_(batch), table.c.activity_count <= 0))
            )


def apply_delta(conn: Connection, delta: StatsDelta, now: datetime) -> None:
    """Apply signed deltas to all aggregate tables and mark the mentors changed.

    Zero entries are skipped (see :meth:`StatsDelta.pruned`); ``delta`` is not changed.
    """
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
    touched = sorted(
        {(k[0], k[1]) for k, n in delta.lifetime.items() if n}
        | {(k[0], k[1]) for k, n in delta.courses.items() if n}
    )
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
    stmt = insert_for(conn, mentors)
    conn.execute(
        stmt.on_conflict_do_update(
            index_elements=[mentors.c.peer_mentor_id],
            set_={"stats_changed_at": stmt.excluded.stats_changed_at},
        ),
        rows,
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
    periods = sorted({key[0].value for key in streak_keys})
    for chunk in batches(ids):
        for mentor, kind, n in conn.execute(_lifetime_counts(chunk)):
            if n > 0:
                counts[mentor][kind] = n
        for mentor, course in conn.execute(_completed(chunk)):
            courses[mentor].add(course)
        for mentor, tier in conn.execute(_highest_tiers(chunk)):
            tiers[mentor] = TierLevel(tier)
        if periods:
            for mentor, period, start, kind in conn.execute(
                _active_periods(chunk, periods, period_range)
            ):
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


def _lifetime_counts(chunk: Sequence[UUID]) -> Select[Any]:
    """(mentor, activity type, count) rows of ``chunk``."""
    t = mentor_activity_counts.c
    return select(t.peer_mentor_id, t.activity_type, t.activity_count).where(
        t.peer_mentor_id.in_(chunk)
    )


def _completed(chunk: Sequence[UUID]) -> Select[Any]:
    """(mentor, course) rows of the courses ``chunk`` has completed."""
    t = completed_courses.c
    return select(t.peer_mentor_id, t.course_id).where(
        t.peer_mentor_id.in_(chunk), t.activity_count > 0
    )


def _highest_tiers(chunk: Sequence[UUID]) -> Select[Any]:
    """(mentor, highest tier) rows of the mentors of ``chunk`` holding a tier."""
    t = tier_assignments.c
    return (
        select(t.peer_mentor_id, func.max(t.tier))
        .where(t.peer_mentor_id.in_(chunk))
        .group_by(t.peer_mentor_id)
    )


def _active_periods(
    chunk: Sequence[UUID], periods: Sequence[str], period_range: tuple[date, date] | None
) -> Select[Any]:
    """(mentor, period, period start, activity type) of every active period of ``chunk``."""
    t = period_activity_counts.c
    query = select(t.peer_mentor_id, t.period, t.period_start, t.activity_type).where(
        t.peer_mentor_id.in_(chunk), t.period.in_(periods), t.activity_count > 0
    )
    if period_range is not None:
        query = query.where(t.period_start.between(*period_range))
    return query


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


def add_from_ledger(conn: Connection, activity_ids: Sequence[UUID], now: datetime) -> None:
    """Add the given (new, live) ledger rows to every aggregate, set-based in SQL."""
    if activity_ids:
        add_rows(
            conn, activity_ledger, in_values(conn, activity_ledger.c.activity_id, activity_ids), now
        )


def ledger_aggregates(
    conn: Connection, source: Any, where: Any, *, count_label: str = "activity_count"
) -> dict[str, Any]:
    """For each aggregate table, a SELECT that recomputes it from ledger-shaped rows.

    Each SELECT yields the table's key columns, ``organisation_id`` and the
    count (labelled ``count_label``), grouped over the *live* rows of
    ``source`` that match ``where``.  Shared by bulk loads (which add these
    counts) and reconcile (which compares them with the stored ones).
    """
    ledger = source.c
    live = and_(
        where,
        ledger.deleted.is_(False),
        ledger.activity_type.is_not(None),
        ledger.activity_date.is_not(None),
    )
    count = func.count().label(count_label)
    mentor, org, kind = ledger.peer_mentor_id, ledger.organisation_id, ledger.activity_type
    periods = []
    for period, start in (
        (Period.WEEK, week_start(conn, ledger.activity_date)),
        (Period.MONTH, month_start(conn, ledger.activity_date)),
    ):
        periods.append(
            select(
                mentor,
                literal(period.value).label("period"),
                start.label("period_start"),
                kind,
                org,
                count,
            )
            .where(live)
            .group_by(mentor, start, kind, org)
        )
    return {
        mentor_activity_counts.name: select(mentor, kind, org, count)
        .where(live)
        .group_by(mentor, kind, org),
        daily_activity_counts.name: select(mentor, ledger.activity_date, kind, org, count)
        .where(live)
        .group_by(mentor, ledger.activity_date, kind, org),
        period_activity_counts.name: union_all(*periods),
        completed_courses.name: select(mentor, ledger.course_id, org, count)
        .where(live, kind == TRAINING_COMPLETED, ledger.course_id.is_not(None))
        .group_by(mentor, ledger.course_id, org),
        mentors.name: select(mentor, org, count).where(live).group_by(mentor, org),
    }


def add_rows(conn: Connection, source: Any, where: Any, now: datetime) -> None:
    """Add the live rows of ``source`` (ledger-shaped) matching ``where`` to every aggregate.

    Bulk loads use this instead of Python deltas: the database groups the
    rows and increments each aggregate in one statement per table.
    """
    queries = ledger_aggregates(conn, source, where)
    for table in (
        mentor_activity_counts,
        daily_activity_counts,
        period_activity_counts,
        completed_courses,
    ):
        keys = [c.name for c in table.primary_key.columns]
        columns = [*keys, "organisation_id", "activity_count"]
        # In key order: the index is then filled left to right, which is
        # cheaper for PostgreSQL than tens of thousands of scattered inserts.
        rows = queries[table.name].order_by(*(literal_column(k) for k in keys))
        stmt = insert_for(conn, table).from_select(columns, rows)
        conn.execute(
            stmt.on_conflict_do_update(
                index_elements=keys,
                set_={"activity_count": table.c.activity_count + stmt.excluded.activity_count},
            )
        )
    ledger = source.c
    stmt = insert_for(conn, mentors).from_select(
        ["peer_mentor_id", "organisation_id", "stats_changed_at"],
        select(
            ledger.peer_mentor_id,
            ledger.organisation_id,
            literal(now, type_=mentors.c.stats_changed_at.type),
        )
        .where(where, ledger.deleted.is_(False))
        .distinct(),
    )
    conn.execute(
        stmt.on_conflict_do_update(
            index_elements=["peer_mentor_id"],
            set_={"stats_changed_at": stmt.excluded.stats_changed_at},
        )
    )
