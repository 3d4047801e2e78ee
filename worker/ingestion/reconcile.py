"""Reconcile: recompute the statistics from the ledger and repair the snapshot (SQL).

The incremental tables (``mentor_activity_counts``, ``daily_activity_counts``,
``period_activity_counts``, ``completed_courses``, and membership in
``mentors``) must always equal a recomputation from the live rows of
``activity_ledger``.  For each table one statement recomputes the expected
rows with ``GROUP BY`` over the ledger and compares them with the stored rows
(two anti-joins: wrong or missing rows, and rows that should not exist).
Only the rows that differ travel to Python; they are then deleted and
re-inserted by key.  The result is the number of drifted rows (0 on a healthy
database).  Repaired mentors are marked changed, so the next tier
re-evaluation looks at them, and are evaluated for badges they now meet.

Concurrency: on PostgreSQL :func:`run_reconcile` uses REPEATABLE READ, so the
comparison and the repair see one snapshot; if an ingest commits a change to a
row being repaired, PostgreSQL reports a serialization failure (or a unique
violation) and the whole reconcile is retried, never overwriting a newer
count with an older one.  On SQLite the unit of work holds the database's
write lock throughout.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

from sqlalchemy import (
    Connection,
    Engine,
    Table,
    and_,
    null,
    or_,
    select,
    true,
    tuple_,
    union_all,
)
from sqlalchemy.exc import DBAPIError

from schema import tables
from worker.badges.awards import EarnedBadge
from worker.badges.evaluation import evaluate_mentors
from worker.core.clock import Clock
from worker.core.models import batches
from worker.db.engine import is_postgres
from worker.db.locks import try_lock_job
from worker.db.unit_of_work import unit_of_work
from worker.notifications.outbox import notify_awards
from worker.notifications.types import OutboxRef
from worker.stats.counts import ledger_aggregates, mark_mentors_changed

log = logging.getLogger(__name__)

JOB_NAME = "reconcile"
#: Whole-reconcile retries after a serialization failure (PostgreSQL).
MAX_ATTEMPTS = 5
#: SQLSTATEs that mean "a concurrent writer got there first": retry.
_RETRY_SQLSTATES = {"40001", "40P01", "23505"}

#: Called after each table with (table name, drifted rows in it).
ProgressCallback = Callable[[str, int], None]


@dataclass(frozen=True)
class _Aggregate:
    """One incremental table and how to recompute it."""

    table: Table
    keys: tuple[str, ...]  # primary key, peer_mentor_id first
    count_column: str | None  # None: membership only (mentors)


AGGREGATES: tuple[_Aggregate, ...] = (
    _Aggregate(
        tables.mentor_activity_counts, ("peer_mentor_id", "activity_type"), "activity_count"
    ),
    _Aggregate(
        tables.daily_activity_counts,
        ("peer_mentor_id", "activity_date", "activity_type"),
        "activity_count",
    ),
    _Aggregate(
        tables.period_activity_counts,
        ("peer_mentor_id", "period", "period_start", "activity_type"),
        "activity_count",
    ),
    _Aggregate(tables.completed_courses, ("peer_mentor_id", "course_id"), "activity_count"),
    _Aggregate(tables.mentors, ("peer_mentor_id",), None),
)
TABLE_NAMES: tuple[str, ...] = tuple(a.table.name for a in AGGREGATES)


@dataclass
class ReconcileReport:
    drifted: dict[str, int] = field(default_factory=dict)  # table -> rows
    repaired: bool = False
    skipped: bool = False  # another reconcile held the job lock
    attempts: int = 1
    mentors: set[UUID] = field(default_factory=set)  # mentors with drift
    awarded: list[EarnedBadge] = field(default_factory=list)
    outbox: list[OutboxRef] = field(default_factory=list)

    @property
    def total(self) -> int:
        return sum(self.drifted.values())


def reconcile(
    conn: Connection,
    *,
    clock: Clock,
    repair: bool = True,
    on_progress: ProgressCallback | None = None,
) -> ReconcileReport:
    """Compare every aggregate with the ledger and (unless ``repair=False``) fix it.

    Runs in the caller's transaction; see :func:`run_reconcile` for the
    isolation level and retries it should run under.
    """
    now = clock.now()
    report = ReconcileReport(repaired=repair)
    changed: dict[UUID, UUID] = {}
    for aggregate in AGGREGATES:
        rows = conn.execute(_drift_query(conn, aggregate)).all()
        report.drifted[aggregate.table.name] = len(rows)
        if rows:
            log.warning(
                "reconcile: %d drifted row(s) in %s, e.g. %s",
                len(rows),
                aggregate.table.name,
                [tuple(r) for r in rows[:5]],
            )
            for r in rows:
                changed[r.peer_mentor_id] = r.organisation_id
            if repair:
                _repair(conn, aggregate, rows)
        if on_progress is not None:
            on_progress(aggregate.table.name, len(rows))
    report.mentors = set(changed)
    if repair and changed:
        ordered = sorted(changed.items(), key=lambda item: str(item[0]))
        for chunk in batches(ordered):
            batch = dict(chunk)
            mark_mentors_changed(conn, ((org, m) for m, org in batch.items()), now)
            evaluation = evaluate_mentors(conn, batch, now=now)
            report.awarded += evaluation.awarded
            report.outbox += notify_awards(conn, evaluation.awarded, now=now)
    log.info("reconcile: %d drifted row(s) in total%s", report.total, " (repaired)" * repair)
    return report


def run_reconcile(
    engine: Engine,
    *,
    clock: Clock,
    repair: bool = True,
    on_progress: ProgressCallback | None = None,
) -> ReconcileReport:
    """Reconcile in its own transaction, under the job lock, retrying on write conflicts.

    Returns a report with ``skipped=True`` when another reconcile holds the lock.
    """
    for attempt in range(1, MAX_ATTEMPTS + 1):
        isolation = "REPEATABLE READ" if is_postgres(engine) else None
        try:
            with unit_of_work(engine, isolation_level=isolation) as connection:
                if not try_lock_job(connection, JOB_NAME):
                    log.info("reconcile: another run holds the lock; skipped")
                    return ReconcileReport(skipped=True, attempts=attempt)
                report = reconcile(connection, clock=clock, repair=repair, on_progress=on_progress)
            report.attempts = attempt
            return report
        except DBAPIError as exc:
            sqlstate = getattr(exc.orig, "sqlstate", None)
            if sqlstate not in _RETRY_SQLSTATES or attempt == MAX_ATTEMPTS:
                raise
            log.info("reconcile: concurrent write (%s); retrying (attempt %d)", sqlstate, attempt)
    raise AssertionError("unreachable")  # pragma: no cover


def _expected(conn: Connection, aggregate: _Aggregate) -> Any:
    """The rows ``aggregate.table`` should hold, recomputed from the live ledger.

    A mentor belongs to one organisation (as in ``mentors``); grouping by it as
    well only carries it along.
    """
    queries = ledger_aggregates(conn, tables.activity_ledger, true(), count_label="expected_count")
    return queries[aggregate.table.name].cte("expected")


def _drift_query(conn: Connection, aggregate: _Aggregate) -> Any:
    """Rows (keys…, organisation_id, expected_count, actual_count) that differ.

    ``expected_count`` is NULL for a row that should not exist; ``actual_count``
    is NULL for a row that is missing.  For ``mentors`` only missing members
    count as drift (a mentor whose activities were all deleted keeps a row).
    """
    expected = _expected(conn, aggregate)
    actual = aggregate.table
    keys_match = and_(*(actual.c[k] == expected.c[k] for k in aggregate.keys))
    if aggregate.count_column is None:
        return (
            select(
                *(expected.c[k] for k in aggregate.keys),
                expected.c.organisation_id,
                expected.c.expected_count,
                null().label("actual_count"),
            )
            .select_from(expected.outerjoin(actual, keys_match))
            .where(actual.c[aggregate.keys[0]].is_(None))
        )
    stored = actual.c[aggregate.count_column]
    wrong_or_missing = (
        select(
            *(expected.c[k] for k in aggregate.keys),
            expected.c.organisation_id,
            expected.c.expected_count,
            stored.label("actual_count"),
        )
        .select_from(expected.outerjoin(actual, keys_match))
        .where(or_(stored.is_(None), stored != expected.c.expected_count))
    )
    extra = (
        select(
            *(actual.c[k] for k in aggregate.keys),
            actual.c.organisation_id,
            null().label("expected_count"),
            stored.label("actual_count"),
        )
        .select_from(actual.outerjoin(expected, keys_match))
        .where(expected.c[aggregate.keys[0]].is_(None))
    )
    return union_all(wrong_or_missing, extra)


def _repair(conn: Connection, aggregate: _Aggregate, rows: Sequence[Any]) -> None:
    table = aggregate.table
    if aggregate.count_column is None:
        return  # missing members are inserted by mark_mentors_changed
    key_columns = tuple_(*(table.c[k] for k in aggregate.keys))
    for batch in batches(rows):
        conn.execute(
            table.delete().where(
                key_columns.in_([tuple(r._mapping[k] for k in aggregate.keys) for r in batch])
            )
        )
        inserts = [
            {
                **{k: r._mapping[k] for k in aggregate.keys},
                "organisation_id": r.organisation_id,
                aggregate.count_column: r.expected_count,
            }
            for r in batch
            if r.expected_count is not None
        ]
        if inserts:
            conn.execute(table.insert(), inserts)
