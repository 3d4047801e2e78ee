"""Staging a history import file: parse every line once into a temporary table.

The first step of ``badges import activities FILE`` (the rest is in
:mod:`worker.ingestion.history_import`).  Every line is parsed once, a batch
of lines per pydantic call (see :func:`_validated`: a failing batch is
validated again line by line, so each bad line gets its own message); valid
rows are streamed into a session-private temporary table (one ``COPY`` for
the whole file on PostgreSQL, so the server stores rows while the next ones
are parsed; batched inserts elsewhere).  Only that table is written, so
when any line is invalid, or an organisation is unknown, nothing is
written: every bad line is reported and the staging table is discarded.
Later lines repeating an activity id are then removed from staging (the
first line counts), once for the whole file.  Memory stays constant
whatever the file size: only the set of the file's mentors is kept in
Python.  On PostgreSQL a second temporary table, ``import_new``, receives
the rows each group of the load actually inserts.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from hashlib import sha1
from pathlib import Path
from types import TracebackType
from typing import Any
from uuid import UUID

from pydantic import TypeAdapter, ValidationError
from pydantic_core import from_json
from sqlalchemy import (
    BigInteger,
    Column,
    Connection,
    Date,
    MetaData,
    String,
    Table,
    Uuid,
    exists,
    select,
)

from schema.tables import activity_ledger, organisations
from worker.core.validation import describe_validation_error
from worker.db.engine import is_postgres
from worker.model.events import Activity

#: Namespace of the synthetic event ids of imported rows.
IMPORT_NAMESPACE = UUID("8d3b9c7e-4a51-4f0e-b9a4-2f6c1d0e7a35")
MAX_REPORTED_PROBLEMS = 50
#: Rows sent to the staging table per write.
_STAGE_BATCH = 5000
#: Lines validated in one call.
_VALIDATE_BATCH = 2000

Progress = Callable[[int], None]  # called with bytes read since the last call


class HistoryImportError(ValueError):
    """The file is invalid; nothing was written.  ``problems`` names each line."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


_ImportStaging = MetaData()
#: Session-private (temporary) table holding the validated rows of the file.
STAGING = Table(
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
_STAGED_COLUMNS = tuple(c.name for c in STAGING.c)
#: PostgreSQL: the rows one group actually inserted (ledger-shaped), emptied at commit.
NEW_ROWS = activity_ledger.to_metadata(MetaData(), name="import_new")
_ACTIVITIES = TypeAdapter(list[Activity])


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
    """Writes validated rows to the staging table: one ``COPY`` stream on PostgreSQL.

    The stream stays open while the file is read, so the server stores one
    batch while the next is parsed; elsewhere, batched inserts.
    """

    def __init__(self, conn: Connection) -> None:
        self._conn = conn
        self._postgres = is_postgres(conn)
        self._rows: list[Any] = []
        self._copy: Any = None

    def __enter__(self) -> _StagingWriter:
        if self._postgres:
            raw = self._conn.connection.driver_connection
            assert raw is not None
            self._stack = ExitStack()
            cursor = self._stack.enter_context(raw.cursor())
            columns = ", ".join(_STAGED_COLUMNS)
            self._copy = self._stack.enter_context(
                cursor.copy(f"COPY import_staging ({columns}) FROM STDIN")
            )
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        if kind is None:
            self._flush()
        if self._postgres:
            self._stack.__exit__(kind, error, trace)  # ends the COPY (or aborts it on error)

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
            self._flush()

    def _flush(self) -> None:
        if not self._rows:
            return
        if self._postgres:
            self._copy.write("".join(self._rows))
        else:
            self._conn.execute(STAGING.insert(), self._rows)
        self._rows = []


def _validated(batch: list[tuple[int, bytes]]) -> Iterator[tuple[int, Activity | ValidationError]]:
    """Each line of ``batch`` with its activity, or the error that rejects it.

    When every line is one complete JSON value, the lines joined by commas
    form an array of exactly those values, validated in one call (about
    half the time of a call per line).  If that fails anywhere, each line is
    validated on its own, so every bad line is found with its own message.
    """
    try:
        for _, line in batch:
            from_json(line)
        activities = _ACTIVITIES.validate_json(b"[" + b",".join(line for _, line in batch) + b"]")
    except ValueError:  # ValidationError included
        pass
    else:
        yield from zip((number for number, _ in batch), activities, strict=True)
        return
    for number, line in batch:
        try:
            yield number, Activity.model_validate_json(line)
        except ValidationError as exc:
            yield number, exc


def _batches(path: Path, progress: Progress | None) -> Iterator[list[tuple[int, bytes]]]:
    batch: list[tuple[int, bytes]] = []
    for item in _lines(path, progress):
        batch.append(item)
        if len(batch) >= _VALIDATE_BATCH:
            yield batch
            batch = []
    if batch:
        yield batch


@dataclass
class Staged:
    lines: int
    mentors: dict[UUID, UUID]


def stage_file(conn: Connection, path: Path, progress: Progress | None) -> Staged:
    """Parse every line once, staging the valid rows; raise if anything is invalid.

    Runs inside the caller's transaction on ``conn``: on error the caller
    rolls back, which also drops the staging table.
    """
    STAGING.create(conn)
    problems: list[str] = []
    # Keyed by the ids' integers while reading: hashing a UUID object runs
    # Python code, and this runs for every line.
    orgs: dict[int, int] = {}  # organisation -> first line naming it
    mentors: dict[int, int] = {}  # mentor -> organisation (of their last line)
    count = 0
    try:
        with _StagingWriter(conn) as writer:
            for batch in _batches(path, progress):
                count += len(batch)
                for number, result in _validated(batch):
                    if isinstance(result, ValidationError):
                        if len(problems) < MAX_REPORTED_PROBLEMS:
                            detail = "; ".join(describe_validation_error(result))
                            problems.append(f"line {number}: {detail}")
                        continue
                    orgs.setdefault(result.organisation_id.int, number)
                    if problems:
                        continue  # nothing will be loaded; keep reading only to report
                    mentors[result.peer_mentor_id.int] = result.organisation_id.int
                    writer.add(number, result)
    except OSError as exc:
        raise HistoryImportError([f"cannot read {path}: {exc.strerror}"]) from None
    named = [UUID(int=org) for org in orgs]
    known = set(conn.scalars(select(organisations.c.id).where(organisations.c.id.in_(named))))
    for org, first_line in zip(named, orgs.values(), strict=True):
        if org not in known:
            problems.append(f"line {first_line}: unknown organisation {org}")
    if problems:
        raise HistoryImportError(problems)
    _deduplicate_and_index(conn)
    return Staged(lines=count, mentors={UUID(int=m): UUID(int=o) for m, o in mentors.items()})


def _deduplicate_and_index(conn: Connection) -> None:
    """Remove later lines repeating an activity id (the first line counts); index by mentor.

    Once for the whole file, after the rows are in (cheaper than keeping
    indexes up to date row by row).
    """
    postgres = is_postgres(conn)
    if not postgres:  # PostgreSQL hashes both sides of the comparison instead
        conn.exec_driver_sql(
            "CREATE INDEX ix_import_staging_activity ON import_staging (activity_id)"
        )
    earlier = STAGING.alias("earlier")
    conn.execute(
        STAGING.delete().where(
            exists().where(
                earlier.c.activity_id == STAGING.c.activity_id, earlier.c.line < STAGING.c.line
            )
        )
    )
    conn.exec_driver_sql("CREATE INDEX ix_import_staging_mentor ON import_staging (peer_mentor_id)")
    if postgres:
        # Temporary tables are never analysed automatically; without
        # statistics the planner would guess the groups' row counts badly.
        # The groups select by mentor id: only that column needs statistics.
        conn.exec_driver_sql("ANALYZE import_staging (peer_mentor_id)")
        conn.exec_driver_sql(
            "CREATE TEMP TABLE import_new (LIKE activity_ledger INCLUDING DEFAULTS) "
            "ON COMMIT DELETE ROWS"
        )


def drop_staging(conn: Connection) -> None:
    """Drop the staging tables in a transaction of their own, once the import is done."""
    with conn.begin():
        conn.exec_driver_sql("DROP TABLE IF EXISTS import_new")
        conn.exec_driver_sql("DROP TABLE IF EXISTS import_staging")


def discard_staging(conn: Connection) -> None:
    """After a failure: drop the staging tables, or end the session that holds them.

    They live as long as the database session, and a pooled connection must
    never carry them to its next user.
    """
    try:
        conn.rollback()
        drop_staging(conn)
    except Exception:
        conn.invalidate()  # the server drops them when the session ends


def activity_line(activity: dict[str, Any]) -> str:
    """One line of an import file (used by tools that generate history)."""
    return json.dumps(activity, separators=(",", ":"))
