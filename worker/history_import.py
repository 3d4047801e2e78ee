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
from sqlalchemy import Connection, Engine, select

from schema.tables import activity_ledger, organisations
from worker.clock import Clock
from worker.db import lock_mentors, unit_of_work
from worker.evaluation import evaluate_mentors
from worker.events import Activity
from worker.ledger import LedgerRow, StatsDelta
from worker.outbox import OutboxRef, write_award_notifications
from worker.sql import insert_for
from worker.stats import apply_delta
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


def _row(activity: Activity) -> LedgerRow:
    return LedgerRow(
        activity_id=activity.id,
        organisation_id=activity.organisation_id,
        peer_mentor_id=activity.peer_mentor_id,
        activity_type=activity.activity_type,
        activity_date=activity.activity_date,
        course_id=activity.course_id,
        occurred_at=HISTORY_OCCURRED_AT,
        last_event_id=uuid5(IMPORT_NAMESPACE, str(activity.id)),
        deleted=False,
    )


def import_chunk(conn: Connection, activities: list[Activity], *, clock: Clock) -> ImportReport:
    """Load one chunk in the caller's transaction: ledger, stats, evaluation, outbox."""
    now = clock.now()
    # The same activity twice in a file: the first line counts.
    unique: dict[UUID, Activity] = {}
    for activity in activities:
        unique.setdefault(activity.id, activity)
    report = ImportReport(lines=len(activities))
    lock_mentors(conn, {a.peer_mentor_id for a in unique.values()})
    rows = [_row(a) for a in sorted(unique.values(), key=lambda a: str(a.id))]
    stmt = (
        insert_for(conn, activity_ledger)
        .values(
            [
                {
                    "activity_id": r.activity_id,
                    "organisation_id": r.organisation_id,
                    "peer_mentor_id": r.peer_mentor_id,
                    "activity_type": r.activity_type,
                    "activity_date": r.activity_date,
                    "course_id": r.course_id,
                    "occurred_at": r.occurred_at,
                    "last_event_id": r.last_event_id,
                    "deleted": False,
                    "updated_at": now,
                }
                for r in rows
            ]
        )
        .on_conflict_do_nothing(index_elements=["activity_id"])
        .returning(activity_ledger.c.activity_id)
    )
    inserted = set(conn.scalars(stmt))
    report.imported = len(inserted)
    report.already_present = len(unique) - len(inserted)
    delta = StatsDelta.empty()
    mentor_orgs: dict[UUID, UUID] = {}
    for row in rows:
        if row.activity_id in inserted:
            delta.add(row, +1)
            mentor_orgs[row.peer_mentor_id] = row.organisation_id
    apply_delta(conn, delta, now)
    evaluation = evaluate_mentors(conn, mentor_orgs, now=now, source="backfill")
    report.awarded = len(evaluation.awarded)
    report.outbox = write_award_notifications(conn, evaluation.awarded, now=now, backfill=True)
    return report


def import_activities(
    engine: Engine,
    path: Path,
    *,
    clock: Clock,
    chunk_size: int = DEFAULT_CHUNK,
    progress: Progress | None = None,
    on_chunk: Callable[[ImportReport], None] | None = None,
) -> ImportReport:
    """Pass 2 after :func:`validate_file`: load the file chunk by chunk.

    Each chunk commits on its own, so an interrupted import can simply be run
    again.  ``on_chunk`` receives each committed chunk's report (e.g. to send
    its notifications).
    """
    total = ImportReport()
    for chunk in _chunks(path, chunk_size, progress):
        with unit_of_work(engine) as conn:
            report = import_chunk(conn, chunk, clock=clock)
        if on_chunk is not None:
            on_chunk(report)
        total.lines += report.lines
        total.imported += report.imported
        total.already_present += report.already_present
        total.awarded += report.awarded
    return total


def activity_line(activity: dict[str, Any]) -> str:
    """One line of an import file (used by tools that generate history)."""
    return json.dumps(activity, separators=(",", ":"))
