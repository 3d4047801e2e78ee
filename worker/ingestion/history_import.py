"""Bulk import of historical activities (``badges import activities FILE``).

For going live on an organisation with years of existing activity.  The file
holds one ``activity`` object per line (the same shape as in events).

1. **Stage** (one pass over the file, :mod:`worker.ingestion.staging`): every
   line is parsed once into a session-private temporary table; when any line
   is invalid, or an organisation is unknown, nothing is written.
2. **Load and evaluate**, a group of mentors at a time.  A group's rows move
   from staging into the ledger in one ``INSERT … SELECT``, its stats are
   built set-based from the rows actually inserted, and the transaction
   commits.  Then the group's mentors are evaluated in a second transaction,
   set-based as well (:mod:`worker.badges.backfill`: one ``INSERT … SELECT``
   per badge definition decides and awards it for the whole group, the
   stats never leave the database): awards flagged ``backfill``, with
   in-app notifications (and, with the push channel enabled, push rows
   written as ``skipped``), no audit rows and nothing revoked.  On
   PostgreSQL the next group loads on the staging connection in a
   background thread while this one is evaluated, so two transactions work
   at the same time; the loader also refreshes the planner's statistics of
   the tables evaluation reads as they grow.

Imported rows carry a fixed, very old ``occurred_at``, so any live event for
the same activity wins (last writer wins), and an activity already in the
ledger is left alone: running the same import twice changes nothing.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar
from uuid import UUID

from sqlalchemy import Connection, Engine, false, func, literal, select, true

from schema.tables import Timestamp, activity_ledger
from worker.badges.backfill import award_mentors
from worker.core.clock import Clock
from worker.core.garbage import collection_paused
from worker.db.engine import is_postgres
from worker.db.locks import lock_mentors
from worker.db.sql import insert_for
from worker.db.unit_of_work import unit_of_work
from worker.ingestion.staging import (
    NEW_ROWS,
    STAGING,
    Progress,
    discard_staging,
    drop_staging,
    stage_file,
)
from worker.ingestion.staging import HistoryImportError as HistoryImportError
from worker.notifications.outbox import notify_awards
from worker.notifications.types import OutboxRef
from worker.stats.counts import add_from_ledger, add_rows

#: ``occurred_at`` of imported history: older than any live event.
HISTORY_OCCURRED_AT = datetime(1970, 1, 1, tzinfo=UTC)
#: A group of mentors is loaded and evaluated together: about this many rows,
#: and at most :data:`MAX_GROUP_MENTORS` mentors (the lock set of one transaction).
DEFAULT_GROUP_ROWS = 50_000
MAX_GROUP_MENTORS = 1000
#: What evaluating a group reads and the import makes grow.
EVALUATED_TABLES = (
    "mentors",
    "mentor_activity_counts",
    "period_activity_counts",
    "completed_courses",
    "earned_badges",
)
#: PostgreSQL ``work_mem`` of a group's load transaction.
LOAD_WORK_MEM = "64MB"
T = TypeVar("T")


@dataclass
class ImportReport:
    lines: int = 0
    imported: int = 0  # new ledger rows
    already_present: int = 0  # distinct activities of the file already in the ledger
    duplicate_lines: int = 0  # later lines repeating an activity id of the file
    #: Mentors (mentor id -> organisation id): all of the file's, or one group's.
    mentors: dict[UUID, UUID] = field(default_factory=dict)
    awarded: int = 0
    outbox: list[OutboxRef] = field(default_factory=list)


def _load_group(conn: Connection, first: UUID, last: UUID, *, now: datetime) -> tuple[int, int]:
    """Move the staged rows of mentors ``first``…``last`` into the ledger; add their stats.

    Runs in the caller's transaction.  Returns ``(distinct activities, rows
    inserted)``; an activity already in the ledger is left alone.
    """
    s = STAGING.alias("s")
    candidates = select(
        s.c.activity_id,
        s.c.organisation_id,
        s.c.peer_mentor_id,
        s.c.activity_type,
        s.c.activity_date,
        s.c.course_id,
        literal(HISTORY_OCCURRED_AT, Timestamp).label("occurred_at"),
        s.c.last_event_id,
        false().label("deleted"),
        literal(now, Timestamp).label("updated_at"),
    ).where(s.c.peer_mentor_id.between(first, last))
    columns = [c.name for c in activity_ledger.c]
    if is_postgres(conn):
        # Enough memory to group and sort a group's rows without spilling
        # to temporary files (for this transaction only).
        conn.exec_driver_sql(f"SET LOCAL work_mem = '{LOAD_WORK_MEM}'")
        rows = candidates.cte("candidates")
        inserted = (
            insert_for(conn, activity_ledger)
            .from_select(columns, select(rows).order_by(rows.c.activity_id))
            .on_conflict_do_nothing(index_elements=["activity_id"])
            .returning(*activity_ledger.c)
            .cte("inserted")
        )
        # The aggregates are built from the rows actually inserted, kept in a
        # small table, instead of looking each of them up in the ledger again.
        kept = (
            NEW_ROWS.insert()
            .from_select(columns, select(inserted))
            .returning(NEW_ROWS.c.activity_id)
            .cte("kept")
        )
        distinct, new = conn.execute(
            select(
                select(func.count()).select_from(rows).scalar_subquery(),
                select(func.count()).select_from(kept).scalar_subquery(),
            )
        ).one()
        add_rows(conn, NEW_ROWS, true(), now)
        return int(distinct), int(new)
    distinct = conn.execute(select(func.count()).select_from(candidates.subquery())).scalar_one()
    stmt = (
        insert_for(conn, activity_ledger)
        .from_select(columns, candidates.order_by(s.c.activity_id))
        .on_conflict_do_nothing(index_elements=["activity_id"])
        .returning(activity_ledger.c.activity_id)
    )
    ids = list(conn.scalars(stmt))
    add_from_ledger(conn, ids, now)
    return int(distinct), len(ids)


def _groups(mentors: dict[UUID, UUID], lines: int, group_rows: int) -> list[list[UUID]]:
    """Consecutive runs of the sorted mentor ids, about ``group_rows`` rows each."""
    ordered = sorted(mentors)
    per_mentor = max(1, lines // max(1, len(ordered)))
    size = max(1, min(MAX_GROUP_MENTORS, group_rows // per_mentor))
    return [ordered[start : start + size] for start in range(0, len(ordered), size)]


def _loaded_groups(
    conn: Connection, groups: list[list[UUID]], *, clock: Clock
) -> Generator[tuple[list[UUID], int, int], None, None]:
    """Load each group in its own transaction on the staging connection.

    After the 1st, 2nd, 4th, 8th… group the tables that evaluation reads are
    analysed: they grow by a group at a time, much faster than autovacuum
    refreshes their statistics, and with statistics of nearly empty tables
    the planner loops over every mentor for each qualifying one (an award
    statement took seconds instead of milliseconds by the twentieth group).
    """
    for number, group in enumerate(groups, start=1):
        with conn.begin():
            lock_mentors(conn, group)
            distinct, new = _load_group(conn, group[0], group[-1], now=clock.now())
            if is_postgres(conn) and number & (number - 1) == 0:
                conn.exec_driver_sql(f"ANALYZE {', '.join(EVALUATED_TABLES)}")
        yield group, distinct, new


def _ahead(items: Iterator[T], *, depth: int) -> Generator[T, None, None]:
    """Iterate ``items`` in a background thread, at most ``depth`` items ahead.

    The thread spends its time waiting for the database (psycopg releases the
    GIL meanwhile), so it overlaps with the consumer's work.  When the
    consumer stops early, the thread finishes the item in hand and stops.
    """
    slots: queue.Queue[tuple[bool, Any]] = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def put(item: tuple[bool, Any]) -> bool:
        while not stop.is_set():
            try:
                slots.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def run() -> None:
        try:
            for item in items:
                if not put((False, item)):
                    return
            put((True, None))
        except BaseException as exc:  # handed to the consumer, raised there
            put((True, exc))

    thread = threading.Thread(target=run, name="history-import-loader", daemon=True)
    thread.start()
    try:
        while True:
            done, value = slots.get()
            if done:
                if value is not None:
                    raise value
                return
            yield value
    finally:
        stop.set()
        thread.join()


def evaluate_group(engine: Engine, mentor_orgs: dict[UUID, UUID], *, clock: Clock) -> ImportReport:
    """Evaluate imported mentors in one transaction; awards are ``backfill``.

    Evaluation is idempotent, so evaluating a mentor again awards nothing new.
    """
    with unit_of_work(engine) as conn:
        lock_mentors(conn, mentor_orgs)
        now = clock.now()
        awarded = award_mentors(conn, mentor_orgs, now=now)
        return ImportReport(
            mentors=mentor_orgs,
            awarded=len(awarded),
            outbox=notify_awards(conn, awarded, now=now, backfill=True),
        )


@collection_paused()
def import_activities(
    engine: Engine,
    path: Path,
    *,
    clock: Clock,
    group_rows: int = DEFAULT_GROUP_ROWS,
    progress: Progress | None = None,
    on_staged: Callable[[ImportReport], None] | None = None,
    on_group: Callable[[ImportReport], None] | None = None,
) -> ImportReport:
    """Validate and stage the whole file, then load and evaluate it group by group.

    Raises :class:`HistoryImportError` (nothing written) when a line is
    invalid or names an unknown organisation.  Each group commits on its own;
    every mentor in the file is evaluated once, also on a re-run, so an import
    interrupted before its evaluation is completed by running it again
    (evaluation is idempotent, so a complete re-run awards nothing new).
    ``on_staged`` receives the file's report before loading starts (lines,
    mentors); ``on_group`` each group's committed evaluation (e.g. to send its
    notifications).  The garbage collector is paused meanwhile (see
    :mod:`worker.core.garbage`): the lines' objects die by reference counting.
    """
    conn = engine.connect()
    try:
        with conn.begin():
            staged = stage_file(conn, path, progress)
        total = ImportReport(lines=staged.lines, mentors=staged.mentors)
        if on_staged is not None:
            on_staged(total)
        groups = _groups(staged.mentors, staged.lines, group_rows)
        loaded = _loaded_groups(conn, groups, clock=clock)
        if is_postgres(conn):
            loaded = _ahead(loaded, depth=1)
        distinct = 0
        try:
            for group, group_distinct, new in loaded:
                distinct += group_distinct
                total.imported += new
                report = evaluate_group(engine, {m: staged.mentors[m] for m in group}, clock=clock)
                report.imported = new
                total.awarded += report.awarded
                if on_group is not None:
                    on_group(report)
        finally:
            loaded.close()  # on error: wait for the loader thread before ending its session
        total.already_present = distinct - total.imported
        total.duplicate_lines = staged.lines - distinct
        drop_staging(conn)
    except BaseException:
        discard_staging(conn)
        raise
    finally:
        conn.close()
    return total
