"""Bulk import of historical activities (``badges import activities FILE``).

For going live on an organisation with years of existing activity.  The file
holds one ``activity`` object per line (the same shape as in events).  Two
streaming passes keep memory constant whatever the file size:

1. validate every line (and that each organisation exists); on any problem
   nothing is written and every bad line is reported;
2. load in chunks, one transaction each: multi-row inserts into the ledger,
   stats deltas for the rows actually inserted, evaluation of the chunk's
   mentors, awards flagged ``backfill`` (in-app notifications, no pushes).

Imported rows carry a fixed, very old ``occurred_at``, so any live event for
the same activity wins (last writer wins), and an activity already in the
ledger is left alone: running the same import twice changes nothing.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from uuid import UUID, uuid5

from pydantic import ValidationError
from sqlalchemy import Connection, Engine, MetaData, select, true

from schema.tables import activity_ledger, organisations
from worker.clock import Clock
from worker.db import is_postgres, lock_mentors, unit_of_work
from worker.evaluation import evaluate_mentors
from worker.events import Activity
from worker.outbox import OutboxRef, write_award_notifications
from worker.sql import insert_for
from worker.stats import add_from_ledger, add_rows
from worker.validation import describe_validation_error

#: ``occurred_at`` of imported history: older than any live event.
HISTORY_OCCURRED_AT = datetime(1970, 1, 1, tzinfo=UTC)
#: Namespace of the synthetic event ids of imported rows.
IMPORT_NAMESPACE = UUID("8d3b9c7e-4a51-4f0e-b9a4-2f6c1d0e7a35")
DEFAULT_CHUNK = 5000
MAX_REPORTED_PROBLEMS = 50

Progress = Callable[[int], None]  # called with bytes read since the last call


class HistoryImportError(ValueError):
    """The file is invalid; nothing was written.  ``problems`` names each line."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


@dataclass
class ImportReport:
    lines: int = 0
    imported: int = 0  # new ledger rows
    already_present: int = 0
    #: Mentors in the file (mentor id -> organisation id): evaluated at the end.
    mentors: dict[UUID, UUID] = field(default_factory=dict)
    awarded: int = 0
    outbox: list[OutboxRef] = field(default_factory=list)


def _lines(path: Path, progress: Progress | None) -> Iterator[tuple[int, bytes]]:
    with path.open("rb") as handle:
        for number, line in enumerate(handle, start=1):
            if progress is not None:
                progress(len(line))
            if line.strip():
                yield number, line


def _parse(number: int, line: bytes) -> Activity:
    try:
        return Activity.model_validate_json(line)
    except ValidationError as exc:
        detail = "; ".join(describe_validation_error(exc))
        raise HistoryImportError([f"line {number}: {detail}"]) from None


def validate_file(conn: Connection, path: Path, *, progress: Progress | None = None) -> int:
    """Pass 1: every line valid and every organisation known.  Returns the line count."""
    problems: list[str] = []
    orgs: dict[UUID, int] = {}
    count = 0
    try:
        for number, line in _lines(path, progress):
            count += 1
            try:
                activity = _parse(number, line)
            except HistoryImportError as exc:
                if len(problems) < MAX_REPORTED_PROBLEMS:
                    problems.extend(exc.problems)
                continue
            orgs.setdefault(activity.organisation_id, number)
    except OSError as exc:
        raise HistoryImportError([f"cannot read {path}: {exc.strerror}"]) from None
    known = set(conn.scalars(select(organisations.c.id).where(organisations.c.id.in_(list(orgs)))))
    for org, first_line in orgs.items():
        if org not in known:
            problems.append(f"line {first_line}: unknown organisation {org}")
    if problems:
        raise HistoryImportError(problems)
    return count


def _chunks(path: Path, size: int, progress: Progress | None) -> Iterator[list[Activity]]:
    chunk: list[Activity] = []
    for number, line in _lines(path, progress):
        chunk.append(_parse(number, line))
        if len(chunk) >= size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def import_chunk(conn: Connection, activities: list[Activity], *, clock: Clock) -> ImportReport:
    """Load one chunk in the caller's transaction: ledger rows, then aggregates in SQL."""
    now = clock.now()
    # The same activity twice in a file: the first line counts.
    unique: dict[UUID, Activity] = {}
    for activity in activities:
        unique.setdefault(activity.id, activity)
    report = ImportReport(lines=len(activities))
    lock_mentors(conn, {a.peer_mentor_id for a in unique.values()})
    params = [
        {
            "activity_id": a.id,
            "organisation_id": a.organisation_id,
            "peer_mentor_id": a.peer_mentor_id,
            "activity_type": a.activity_type,
            "activity_date": a.activity_date,
            "course_id": a.course_id,
            "occurred_at": HISTORY_OCCURRED_AT,
            "last_event_id": uuid5(IMPORT_NAMESPACE, str(a.id)),
            "deleted": False,
            "updated_at": now,
        }
        for a in sorted(unique.values(), key=lambda a: str(a.id))
    ]
    inserted = _insert_new_rows(conn, params)
    report.imported = len(inserted)
    report.already_present = len(unique) - len(inserted)
    report.mentors = {a.peer_mentor_id: a.organisation_id for a in unique.values()}
    if is_postgres(conn):
        add_rows(conn, _STAGING, true(), now)
        conn.exec_driver_sql("TRUNCATE import_staging")
    else:
        add_from_ledger(conn, inserted, now)
    return report


_LEDGER_COLUMNS = (
    "activity_id",
    "organisation_id",
    "peer_mentor_id",
    "activity_type",
    "activity_date",
    "course_id",
    "occurred_at",
    "last_event_id",
    "deleted",
    "updated_at",
)


#: The transaction-scoped staging table of a PostgreSQL chunk (ledger-shaped).
_STAGING = activity_ledger.to_metadata(MetaData(), name="import_staging")


def _insert_new_rows(conn: Connection, params: list[dict[str, Any]]) -> list[UUID]:
    """Insert ledger rows that do not exist yet; return the ids inserted.

    On PostgreSQL the rows are streamed with COPY into a transaction-scoped
    staging table and moved with one INSERT … SELECT; elsewhere a batched
    multi-row INSERT does the same.
    """
    if not params:
        return []
    if not is_postgres(conn):
        stmt = (
            insert_for(conn, activity_ledger)
            .on_conflict_do_nothing(index_elements=["activity_id"])
            .returning(activity_ledger.c.activity_id)
        )
        return list(conn.scalars(stmt, params))
    columns = ", ".join(_LEDGER_COLUMNS)
    conn.exec_driver_sql(
        "CREATE TEMP TABLE IF NOT EXISTS import_staging "
        "(LIKE activity_ledger INCLUDING DEFAULTS) ON COMMIT DELETE ROWS"
    )
    raw = conn.connection.driver_connection
    assert raw is not None
    with raw.cursor() as cursor, cursor.copy(f"COPY import_staging ({columns}) FROM STDIN") as copy:
        for row in params:
            copy.write_row([row[c] for c in _LEDGER_COLUMNS])
    # Keep only the rows actually inserted in staging: the aggregates are then
    # built from this small table instead of looking each row up again.
    result = conn.exec_driver_sql(
        f"WITH inserted AS (INSERT INTO activity_ledger ({columns}) "
        f"SELECT {columns} FROM import_staging "
        "ON CONFLICT (activity_id) DO NOTHING RETURNING activity_id), "
        "dropped AS (DELETE FROM import_staging s WHERE NOT EXISTS "
        "(SELECT 1 FROM inserted i WHERE i.activity_id = s.activity_id)) "
        "SELECT activity_id FROM inserted"
    )
    return [row[0] for row in result]


def evaluate_imported(
    engine: Engine, mentor_orgs: dict[UUID, UUID], *, clock: Clock, group_size: int = 1000
) -> Iterator[ImportReport]:
    """Evaluate the imported mentors, a group per transaction.

    Runs once after all chunks are loaded, so each mentor is evaluated once
    however their activities are spread over the file.  Awards are flagged
    ``backfill``: in-app notifications, no pushes.
    """
    ordered = sorted(mentor_orgs)
    for start in range(0, len(ordered), group_size):
        group = {m: mentor_orgs[m] for m in ordered[start : start + group_size]}
        with unit_of_work(engine) as conn:
            lock_mentors(conn, group)
            now = clock.now()
            evaluation = evaluate_mentors(conn, group, now=now, source="backfill")
            report = ImportReport(
                awarded=len(evaluation.awarded),
                outbox=write_award_notifications(conn, evaluation.awarded, now=now, backfill=True),
            )
        yield report


def import_activities(
    engine: Engine,
    path: Path,
    *,
    clock: Clock,
    chunk_size: int = DEFAULT_CHUNK,
    progress: Progress | None = None,
    on_chunk: Callable[[ImportReport], None] | None = None,
) -> ImportReport:
    """Pass 2 after :func:`validate_file`: load chunk by chunk, then evaluate.

    Each chunk commits on its own.  Memory stays constant in the number of
    activities (only the set of the file's mentors is kept).  Every mentor in
    the file is evaluated at the end, also on a re-run: an import interrupted
    before its evaluation is completed by running it again (evaluation is
    idempotent, so a complete re-run awards nothing new).  ``on_chunk`` receives each committed report (e.g. to
    send the notifications of an evaluation group).
    """
    total = ImportReport()
    for chunk in _chunks(path, chunk_size, progress):
        with unit_of_work(engine) as conn:
            report = import_chunk(conn, chunk, clock=clock)
        total.lines += report.lines
        total.imported += report.imported
        total.already_present += report.already_present
        total.mentors.update(report.mentors)
    if total.mentors:
        for report in evaluate_imported(engine, total.mentors, clock=clock):
            if on_chunk is not None:
                on_chunk(report)
            total.awarded += report.awarded
    return total


def activity_line(activity: dict[str, Any]) -> str:
    """One line of an import file (used by tools that generate history)."""
    return json.dumps(activity, separators=(",", ":"))
