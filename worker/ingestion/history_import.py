"""Bulk import of historical activities (``badges import activities FILE``).

For going live on an organisation with years of existing activity.  The file
holds one ``activity`` object per line (the same shape as in events).  Memory
stays constant whatever the file size: only the set of the file's mentors is
kept in Python.

1. **Stage** (one pass over the file): every line is parsed once; valid rows
   are streamed into a session-private temporary table (``COPY`` on
   PostgreSQL, batched inserts elsewhere).  Only that table is written, so
   when any line is invalid, or an organisation is unknown, nothing is
   written: every bad line is reported and the staging table is discarded.
   Later lines repeating an activity id are then removed from staging (the
   first line counts), once for the whole file.
2. **Load and evaluate**, a group of mentors at a time.  A group's rows move
   from staging into the ledger in one ``INSERT … SELECT``, its stats are
   built set-based from the rows actually inserted, and the transaction
   commits.  Then the group's
   mentors are evaluated in a second transaction: awards flagged ``backfill``,
   with in-app notifications and push rows written as ``skipped``.  On
   PostgreSQL the next group loads on the staging connection in a background
   thread while this one is evaluated, so the database and Python work at the
   same time.

Imported rows carry a fixed, very old ``occurred_at``, so any live event for
the same activity wins (last writer wins), and an activity already in the
ledger is left alone: running the same import twice changes nothing.
"""

from __future__ import annotations

import json
import queue
import threading
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from hashlib import sha1
from pathlib import Path
from typing import Any, TypeVar
from uuid import UUID

from pydantic import ValidationError
from sqlalchemy import (
    BigInteger,
    Column,
    Connection,
    Date,
    Engine,
    MetaData,
    String,
    Table,
    Uuid,
    exists,
    false,
    func,
    literal,
    select,
    true,
)

from schema.tables import Timestamp, activity_ledger, organisations
from worker.badges.evaluation import evaluate_mentors
from worker.core.clock import Clock
from worker.core.validation import describe_validation_error
from worker.db.engine import is_postgres
from worker.db.locks import lock_mentors
from worker.db.sql import insert_for
from worker.db.unit_of_work import unit_of_work
from worker.model.events import Activity
from worker.notifications.outbox import notify_awards
from worker.notifications.types import OutboxRef
from worker.stats.counts import add_from_ledger, add_rows

#: ``occurred_at`` of imported history: older than any live event.
HISTORY_OCCURRED_AT = datetime(1970, 1, 1, tzinfo=UTC)
#: Namespace of the synthetic event ids of imported rows.
IMPORT_NAMESPACE = UUID("8d3b9c7e-4a51-4f0e-b9a4-2f6c1d0e7a35")
#: A group of mentors is loaded and evaluated together: about this many rows,
#: and at most :data:`MAX_GROUP_MENTORS` mentors (the lock set of one transaction).
DEFAULT_GROUP_ROWS = 50_000
MAX_GROUP_MENTORS = 1000
MAX_REPORTED_PROBLEMS = 50
#: Rows sent to the staging table per write.
_STAGE_BATCH = 5000

Progress = Callable[[int], None]  # called with bytes read since the last call
T = TypeVar("T")


class HistoryImportError(ValueError):
    """The file is invalid; nothing was written.  ``problems`` names each line."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


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


_ImportStaging = MetaData()
#: Session-private (temporary) table holding the validated rows of the file.
_STAGING = Table(
    "import_staging",
    _ImportStaging,
    Column("line", BigInteger, nullable=False),
    Column("activity_id", Uuid, nullable=False),
    Column("organisation_id", Uuid, nullable=False),
    Column("peer_mentor_id", Uuid, nullable=False),
    Column("activity_type", String(64), nullable=False),
    Column("activity_date", Date, nullable=False),
    Column("course_id", String(128)),
    Column("last_event_id", Uuid, nullable=False),
    prefixes=["TEMPORARY"],
)
_STAGED_COLUMNS = tuple(c.name for c in _STAGING.c)
#: PostgreSQL: the rows one group actually inserted (ledger-shaped), emptied at commit.
_NEW = activity_ledger.to_metadata(MetaData(), name="import_new")


def _lines(path: Path, progress: Progress | None) -> Iterator[tuple[int, bytes]]:
    with path.open("rb") as handle:
        for number, line in enumerate(handle, start=1):
            if progress is not None:
                progress(len(line))
            if line.strip():
                yield number, line


def _copy_text(value: str) -> str:
    """``value`` escaped for PostgreSQL's COPY text format."""
    if "\\" in value or "\t" in value or "\n" in value or "\r" in value:
        value = (
            value.replace("\\", "\\\\")
            .replace("\t", "\\t")
            .replace("\n", "\\n")
            .replace("\r", "\\r")
        )
    return value


_NAMESPACE_BYTES = IMPORT_NAMESPACE.bytes


def import_event_id(activity_id: str) -> str:
    """``uuid5(IMPORT_NAMESPACE, activity_id).hex``: the synthetic event id of an imported row.

    Spelled out (SHA-1, then the version and variant bits) because it runs
    once per line, and this is about four times faster than building the
    ``UUID`` object and formatting it.
    """
    digest = bytearray(sha1(_NAMESPACE_BYTES + activity_id.encode()).digest()[:16])
    digest[6] = (digest[6] & 0x0F) | 0x50  # version 5
    digest[8] = (digest[8] & 0x3F) | 0x80  # RFC 4122 variant
    return digest.hex()


class _StagingWriter:
    """Buffers validated rows and writes them to the staging table in batches."""

    def __init__(self, conn: Connection) -> None:
        self._conn = conn
        self._postgres = is_postgres(conn)
        self._rows: list[Any] = []

    def add(self, number: int, a: Activity) -> None:
        activity_id = str(a.id)
        event_id = import_event_id(activity_id)
        if self._postgres:
            # COPY text format (PostgreSQL reads a uuid from 32 bare hex digits
            # too); activity types match ``[a-z][a-z0-9_]*`` and need no
            # escaping, course ids are free text and may.
            course = "\\N" if a.course_id is None else _copy_text(a.course_id)
            self._rows.append(
                f"{number}\t{activity_id}\t{a.organisation_id.hex}\t{a.peer_mentor_id.hex}"
                f"\t{a.activity_type}\t{a.activity_date.isoformat()}\t{course}\t{event_id}\n"
            )
        else:
            self._rows.append(
                {
                    "line": number,
                    "activity_id": a.id,
                    "organisation_id": a.organisation_id,
                    "peer_mentor_id": a.peer_mentor_id,
                    "activity_type": a.activity_type,
                    "activity_date": a.activity_date,
                    "course_id": a.course_id,
                    "last_event_id": UUID(hex=event_id),
                }
            )
        if len(self._rows) >= _STAGE_BATCH:
            self.flush()

    def flush(self) -> None:
        if not self._rows:
            return
        if self._postgres:
            raw = self._conn.connection.driver_connection
            assert raw is not None
            columns = ", ".join(_STAGED_COLUMNS)
            with (
                raw.cursor() as cursor,
                cursor.copy(f"COPY import_staging ({columns}) FROM STDIN") as copy,
            ):
                copy.write("".join(self._rows))
        else:
            self._conn.execute(_STAGING.insert(), self._rows)
        self._rows = []


@dataclass
class _Staged:
    lines: int
    mentors: dict[UUID, UUID]


def _stage_file(conn: Connection, path: Path, progress: Progress | None) -> _Staged:
    """Parse every line once, staging the valid rows; raise if anything is invalid.

    Runs inside the caller's transaction on ``conn``: on error the caller
    rolls back, which also drops the staging table.
    """
    _STAGING.create(conn)
    writer = _StagingWriter(conn)
    problems: list[str] = []
    orgs: dict[UUID, int] = {}  # organisation -> first line naming it
    mentors: dict[UUID, UUID] = {}
    count = 0
    try:
        for number, line in _lines(path, progress):
            count += 1
            try:
                activity = Activity.model_validate_json(line)
            except ValidationError as exc:
                if len(problems) < MAX_REPORTED_PROBLEMS:
                    detail = "; ".join(describe_validation_error(exc))
                    problems.append(f"line {number}: {detail}")
                continue
            orgs.setdefault(activity.organisation_id, number)
            if problems:
                continue  # nothing will be loaded; keep reading only to report
            mentors[activity.peer_mentor_id] = activity.organisation_id
            writer.add(number, activity)
    except OSError as exc:
        raise HistoryImportError([f"cannot read {path}: {exc.strerror}"]) from None
    known = set(conn.scalars(select(organisations.c.id).where(organisations.c.id.in_(list(orgs)))))
    for org, first_line in orgs.items():
        if org not in known:
            problems.append(f"line {first_line}: unknown organisation {org}")
    if problems:
        raise HistoryImportError(problems)
    writer.flush()
    # Indexes are built once the rows are in (cheaper than maintaining them
    # row by row).  The same activity on several lines: the first line
    # counts, so the later ones are removed here, once for the whole file.
    conn.exec_driver_sql("CREATE INDEX ix_import_staging_activity ON import_staging (activity_id)")
    earlier = _STAGING.alias("earlier")
    conn.execute(
        _STAGING.delete().where(
            exists().where(
                earlier.c.activity_id == _STAGING.c.activity_id, earlier.c.line < _STAGING.c.line
            )
        )
    )
    conn.exec_driver_sql("CREATE INDEX ix_import_staging_mentor ON import_staging (peer_mentor_id)")
    if is_postgres(conn):
        # Temporary tables are never analysed automatically; without
        # statistics the planner would guess the groups' row counts badly.
        conn.exec_driver_sql("ANALYZE import_staging")
        conn.exec_driver_sql(
            "CREATE TEMP TABLE import_new (LIKE activity_ledger INCLUDING DEFAULTS) "
            "ON COMMIT DELETE ROWS"
        )
    return _Staged(lines=count, mentors=mentors)


def _load_group(conn: Connection, first: UUID, last: UUID, *, now: datetime) -> tuple[int, int]:
    """Move the staged rows of mentors ``first``…``last`` into the ledger; add their stats.

    Runs in the caller's transaction.  Returns ``(distinct activities, rows
    inserted)``; an activity already in the ledger is left alone.
    """
    s = _STAGING.alias("s")
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
            _NEW.insert()
            .from_select(columns, select(inserted))
            .returning(_NEW.c.activity_id)
            .cte("kept")
        )
        distinct, new = conn.execute(
            select(
                select(func.count()).select_from(rows).scalar_subquery(),
                select(func.count()).select_from(kept).scalar_subquery(),
            )
        ).one()
        add_rows(conn, _NEW, true(), now)
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
    """Load each group in its own transaction on the staging connection."""
    for group in groups:
        with conn.begin():
            lock_mentors(conn, group)
            distinct, new = _load_group(conn, group[0], group[-1], now=clock.now())
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
        evaluation = evaluate_mentors(conn, mentor_orgs, now=now, source="backfill")
        return ImportReport(
            mentors=mentor_orgs,
            awarded=len(evaluation.awarded),
            outbox=notify_awards(conn, evaluation.awarded, now=now, backfill=True),
        )


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
    notifications).
    """
    conn = engine.connect()
    try:
        with conn.begin():
            staged = _stage_file(conn, path, progress)
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
        _drop_staging(conn)
    except BaseException:
        _discard_staging(conn)
        raise
    finally:
        conn.close()
    return total


def _drop_staging(conn: Connection) -> None:
    with conn.begin():
        conn.exec_driver_sql("DROP TABLE IF EXISTS import_new")
        conn.exec_driver_sql("DROP TABLE IF EXISTS import_staging")


def _discard_staging(conn: Connection) -> None:
    """After a failure: drop the staging tables, or end the session that holds them.

    They live as long as the database session, and a pooled connection must
    never carry them to its next user.
    """
    try:
        conn.rollback()
        _drop_staging(conn)
    except Exception:
        conn.invalidate()  # the server drops them when the session ends


def activity_line(activity: dict[str, Any]) -> str:
    """One line of an import file (used by tools that generate history)."""
    return json.dumps(activity, separators=(",", ":"))
