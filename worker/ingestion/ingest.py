"""One unit of work: events -> ledger -> stats -> evaluation -> awards -> outbox.

:func:`ingest_events` takes a *list* of incoming events (a single event is a
list of one) and does everything in the caller's transaction, with a
constant number of statements per batch rather than per event:

1. validate; contract breaks and unknown organisations go to quarantine;
2. lock the batch's mentors (advisory locks, sorted: no deadlocks); with
   ``wait_for_locks=False`` only the free ones, without waiting: the events of
   the others are handed back in :attr:`IngestResult.deferred` untouched, for
   a follow-up unit of work (:func:`worker.ingestion.batch.ingest_batch`);
3. record event ids (a redelivered event is a no-op);
4. resolve each activity last-writer-wins against the ledger row (by primary key);
5. apply the signed stats deltas with atomic increments;
6. evaluate the changed mentors, award, revoke revocable badges no longer met;
7. write notification outbox rows for the new awards.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from sqlalchemy import Connection, select

from schema.tables import activity_ledger, organisations, processed_events
from worker.badges.awards import EarnedBadge
from worker.badges.evaluation import evaluate_mentors
from worker.core.clock import Clock, as_utc
from worker.db.locks import lock_mentors, try_lock_mentors
from worker.db.sql import insert_for
from worker.ingestion.quarantine import quarantine
from worker.model.events import ActivityDeleted, ActivitySaved, InvalidEvent, parse_event
from worker.model.ledger import LedgerRow, Resolution, resolve_batch, row_from_event
from worker.notifications.outbox import notify_awards
from worker.notifications.types import OutboxRef
from worker.stats.counts import apply_delta

Event = ActivitySaved | ActivityDeleted


@dataclass(frozen=True)
class IncomingEvent:
    """One message's payload and the id of the task that carried it."""

    payload: Any
    task_id: str | None = None


@dataclass
class IngestResult:
    received: int = 0
    applied: int = 0  # changed the ledger
    duplicates: int = 0  # event id seen before
    stale: int = 0  # older than what the ledger holds
    quarantined: int = 0
    awarded: list[EarnedBadge] = field(default_factory=list)
    revoked: list[EarnedBadge] = field(default_factory=list)
    outbox: list[OutboxRef] = field(default_factory=list)
    award_conflicts: int = 0  # awards the unique constraint caught (a race past the locks)
    deferred: list[IncomingEvent] = field(default_factory=list)  # mentor locked elsewhere

    def merge(self, other: IngestResult) -> None:
        for name in (
            "received",
            "applied",
            "duplicates",
            "stale",
            "quarantined",
            "award_conflicts",
        ):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.awarded += other.awarded
        self.revoked += other.revoked
        self.outbox += other.outbox


def ingest_events(
    conn: Connection,
    incoming: Sequence[IncomingEvent],
    *,
    clock: Clock,
    backfill: bool = False,
    wait_for_locks: bool = True,
) -> IngestResult:
    """Process a batch of events in the caller's transaction (see module docstring).

    With ``wait_for_locks=False`` the events of mentors whose lock another
    transaction holds are not processed but returned in ``deferred`` (they
    are counted in ``received`` and nowhere else).
    """
    now = clock.now()
    result = IngestResult(received=len(incoming))
    valid = _admit(conn, incoming, result, now=now, wait_for_locks=wait_for_locks)
    if not valid:
        return result
    resolution = _apply(conn, valid, result, now=now)
    _evaluate(conn, resolution, result, now=now, backfill=backfill)
    return result


def _admit(
    conn: Connection,
    incoming: Sequence[IncomingEvent],
    result: IngestResult,
    *,
    now: datetime,
    wait_for_locks: bool,
) -> list[Event]:
    """Steps 1 and 2: quarantine what is invalid, lock the mentors; the events to process."""
    parsed, rejected = _validate(incoming)
    known, unknown_org = _known_organisations(conn, parsed)
    rejected += unknown_org
    result.quarantined = quarantine(
        conn, ((i.payload, i.task_id, reason) for i, reason in rejected), now=now
    )
    mentors = {e.activity.peer_mentor_id for e, _ in known}
    if wait_for_locks:
        lock_mentors(conn, mentors)
    else:
        acquired = try_lock_mentors(conn, mentors)
        result.deferred = [i for e, i in known if e.activity.peer_mentor_id not in acquired]
        known = [(e, i) for e, i in known if e.activity.peer_mentor_id in acquired]
    return [e for e, _ in known]


def _apply(
    conn: Connection, valid: list[Event], result: IngestResult, *, now: datetime
) -> Resolution:
    """Steps 3 to 5: record the event ids, resolve against the ledger, write it and the stats."""
    fresh = _record_event_ids(conn, valid, now)
    result.duplicates = len(valid) - len(fresh)
    stored = _load_ledger(conn, {e.activity.id for e in fresh})
    resolution = resolve_batch(stored, (row_from_event(e) for e in fresh))
    result.stale = resolution.stale
    if resolution.moved:
        result.quarantined += quarantine(
            conn,
            (
                (f"activity {a}", None, "activity may not change organisation or mentor")
                for a in resolution.moved
            ),
            now=now,
        )
    result.applied = len(resolution.changes)
    _write_ledger(conn, resolution.changes, now)
    apply_delta(conn, resolution.delta, now)
    return resolution


def _evaluate(
    conn: Connection, resolution: Resolution, result: IngestResult, *, now: datetime, backfill: bool
) -> None:
    """Steps 6 and 7: evaluate the mentors whose stats changed; outbox rows for the new awards."""
    decreased = resolution.delta.decreased_mentors
    counted = resolution.delta.mentors | decreased
    changed_mentors = {
        row.peer_mentor_id: row.organisation_id
        for row in resolution.changes
        if row.peer_mentor_id in counted
    }
    evaluation = evaluate_mentors(
        conn,
        changed_mentors,
        now=now,
        source="backfill" if backfill else "evaluation",
        recheck_revocable=decreased,
    )
    result.awarded = evaluation.awarded
    result.revoked = evaluation.revoked
    result.award_conflicts = evaluation.conflicts
    result.outbox = notify_awards(conn, evaluation.awarded, now=now, backfill=backfill)


Parsed = tuple[Event, IncomingEvent]
Rejected = tuple[IncomingEvent, str]


def _validate(incoming: Sequence[IncomingEvent]) -> tuple[list[Parsed], list[Rejected]]:
    valid: list[Parsed] = []
    rejected: list[Rejected] = []
    for item in incoming:
        try:
            valid.append((parse_event(item.payload), item))
        except InvalidEvent as exc:
            rejected.append((item, exc.reason))
    return valid, rejected


def _known_organisations(
    conn: Connection, parsed: list[Parsed]
) -> tuple[list[Parsed], list[Rejected]]:
    wanted = {e.activity.organisation_id for e, _ in parsed}
    if not wanted:
        return [], []
    known = set(conn.scalars(select(organisations.c.id).where(organisations.c.id.in_(wanted))))
    valid = [(e, item) for e, item in parsed if e.activity.organisation_id in known]
    rejected = [
        (item, f"activity.organisation_id: unknown organisation {e.activity.organisation_id}")
        for e, item in parsed
        if e.activity.organisation_id not in known
    ]
    return valid, rejected


def _record_event_ids(conn: Connection, events: list[Event], now: datetime) -> list[Event]:
    """Insert event ids; return the events seen for the first time (in batch order)."""
    first: dict[UUID, Event] = {}
    for event in events:
        first.setdefault(event.event_id, event)
    rows = [
        {"event_id": e.event_id, "activity_id": e.activity.id, "processed_at": now}
        for e in first.values()
    ]
    stmt = (
        insert_for(conn, processed_events)
        .on_conflict_do_nothing(index_elements=["event_id"])
        .returning(processed_events.c.event_id)
    )
    inserted = set(conn.scalars(stmt, rows))
    return [e for event_id, e in first.items() if event_id in inserted]


def _load_ledger(conn: Connection, activity_ids: set[UUID]) -> dict[UUID, LedgerRow]:
    """The stored rows of exactly these activities (primary-key lookups only)."""
    if not activity_ids:
        return {}
    rows = conn.execute(
        select(activity_ledger).where(activity_ledger.c.activity_id.in_(sorted(activity_ids)))
    )
    return {
        r.activity_id: LedgerRow(
            **{name: r._mapping[name] for name in _STORED_FIELDS}, occurred_at=as_utc(r.occurred_at)
        )
        for r in rows
    }


#: The ledger columns a :class:`LedgerRow` holds as they are (``occurred_at`` needs a zone).
_STORED_FIELDS = [f.name for f in fields(LedgerRow) if f.name != "occurred_at"]


def _write_ledger(conn: Connection, rows: list[LedgerRow], now: datetime) -> None:
    if not rows:
        return
    values = [
        {
            "activity_id": r.activity_id,
            "organisation_id": r.organisation_id,
            "peer_mentor_id": r.peer_mentor_id,
            "activity_type": r.activity_type,
            "activity_date": r.activity_date,
            "course_id": r.course_id,
            "occurred_at": r.occurred_at.astimezone(UTC),
            "last_event_id": r.last_event_id,
            "deleted": r.deleted,
            "updated_at": now,
        }
        for r in sorted(rows, key=lambda r: str(r.activity_id))
    ]
    stmt = insert_for(conn, activity_ledger)
    replaced = {c: stmt.excluded[c] for c in values[0] if c != "activity_id"}
    conn.execute(stmt.on_conflict_do_update(index_elements=["activity_id"], set_=replaced), values)
