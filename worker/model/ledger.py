"""Pure last-writer-wins resolution of activity events, and the stats deltas it implies.

Each activity has a *version* ``(occurred_at, is_delete, event_id)``; the
highest version wins whatever order events arrive in.  Deletes win ties on
``occurred_at`` (a save and a delete stamped at the same instant leave the
activity deleted) and the event id breaks any remaining tie, so the outcome
never depends on delivery order.  A delete leaves a tombstone, so a stale save
that arrives later (or a delete seen before the first save) stays deleted.
:func:`resolve_batch` applies this to a batch of events against the stored
rows and says which rows to write and how the stats change.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date, datetime
from typing import TypeVar
from uuid import UUID

from worker.model.events import TRAINING_COMPLETED, ActivityDeleted, ActivitySaved
from worker.model.streaks import Period, period_start

Version = tuple[datetime, bool, UUID]


@dataclass(frozen=True)
class LedgerRow:
    activity_id: UUID
    organisation_id: UUID
    peer_mentor_id: UUID
    activity_type: str | None
    activity_date: date | None
    course_id: str | None
    occurred_at: datetime
    last_event_id: UUID
    deleted: bool

    @property
    def version(self) -> Version:
        return (self.occurred_at, self.deleted, self.last_event_id)

    @property
    def live(self) -> bool:
        return not self.deleted and self.activity_type is not None

    @property
    def owner(self) -> tuple[UUID, UUID]:
        """(organisation, mentor): fixed for the life of an activity."""
        return (self.organisation_id, self.peer_mentor_id)


def row_from_event(event: ActivitySaved | ActivityDeleted) -> LedgerRow:
    a = event.activity
    deleted = isinstance(event, ActivityDeleted)
    return LedgerRow(
        activity_id=a.id,
        organisation_id=a.organisation_id,
        peer_mentor_id=a.peer_mentor_id,
        activity_type=a.activity_type,
        activity_date=a.activity_date,
        course_id=a.course_id,
        occurred_at=event.occurred_at,
        last_event_id=event.event_id,
        deleted=deleted,
    )


def resolve(stored: LedgerRow | None, incoming: Iterable[LedgerRow]) -> LedgerRow | None:
    """The winning row among ``stored`` and ``incoming``, or None if ``stored`` still wins."""
    best = stored
    for row in incoming:
        if best is None or row.version > best.version:
            best = row
    return None if best is stored else best


@dataclass(frozen=True)
class Resolution:
    """What a batch of fresh events does to the ledger (see :func:`resolve_batch`)."""

    #: The winning rows to write, one per activity that changed.
    changes: list[LedgerRow]
    #: The signed stats changes those rows cause; zero entries left out.
    delta: StatsDelta
    #: Events that lost: superseded inside the batch or by the stored row.
    stale: int
    #: Activities whose winning event names another organisation or mentor than
    #: the stored row: rejected (an activity never moves), counted in ``stale``.
    moved: list[UUID]


def resolve_batch(stored: Mapping[UUID, LedgerRow], incoming: Iterable[LedgerRow]) -> Resolution:
    """Resolve every incoming row against the stored row of its activity, last writer wins.

    ``incoming`` holds one row per *fresh* event (event ids seen before are
    filtered out by the caller); ``stored`` the ledger rows of those
    activities.  Several events of one activity in a batch resolve as if they
    had arrived one by one, in any order.
    """
    by_activity: dict[UUID, list[LedgerRow]] = defaultdict(list)
    for row in incoming:
        by_activity[row.activity_id].append(row)
    delta = StatsDelta.empty()
    changes: list[LedgerRow] = []
    moved: list[UUID] = []
    stale = 0
    for activity_id, rows in by_activity.items():
        before = stored.get(activity_id)
        after = resolve(before, rows)
        stale += len(rows) - (1 if after is not None else 0)
        if after is None:
            continue
        if before is not None and before.owner != after.owner:
            moved.append(activity_id)
            stale += 1
            continue
        changes.append(after)
        delta.change(before, after)
    return Resolution(changes, delta.pruned(), stale, moved)


@dataclass
class StatsDelta:
    """Signed changes to the aggregate tables caused by a set of ledger changes."""

    lifetime: Counter[tuple[UUID, UUID, str]]  # (org, mentor, type)
    daily: Counter[tuple[UUID, UUID, date, str]]  # (org, mentor, date, type)
    periods: Counter[tuple[UUID, UUID, str, date, str]]  # (org, mentor, period, start, type)
    courses: Counter[tuple[UUID, UUID, str]]  # (org, mentor, course)

    @classmethod
    def empty(cls) -> StatsDelta:
        return cls(Counter(), Counter(), Counter(), Counter())

    def add(self, row: LedgerRow, sign: int) -> None:
        if not row.live or row.activity_type is None or row.activity_date is None:
            return
        org, mentor, kind, day = (
            row.organisation_id,
            row.peer_mentor_id,
            row.activity_type,
            row.activity_date,
        )
        self.lifetime[(org, mentor, kind)] += sign
        self.daily[(org, mentor, day, kind)] += sign
        for period in Period:
            self.periods[(org, mentor, period.value, period_start(day, period), kind)] += sign
        if kind == TRAINING_COMPLETED and row.course_id is not None:
            self.courses[(org, mentor, row.course_id)] += sign

    def change(self, before: LedgerRow | None, after: LedgerRow) -> None:
        if before is not None:
            self.add(before, -1)
        self.add(after, +1)

    def pruned(self) -> StatsDelta:
        """A copy without zero entries (an update that changed nothing counted)."""
        return StatsDelta(
            _nonzero(self.lifetime),
            _nonzero(self.daily),
            _nonzero(self.periods),
            _nonzero(self.courses),
        )

    @property
    def mentors(self) -> set[UUID]:
        """Mentors with a nonzero change of a lifetime count or of completed courses."""
        return {k[1] for k, v in self.lifetime.items() if v} | {
            k[1] for k, v in self.courses.items() if v
        }

    @property
    def decreased_mentors(self) -> set[UUID]:
        """Mentors some count of whom went down (their revocable badges need a look)."""
        return (
            {k[1] for k, v in self.lifetime.items() if v < 0}
            | {k[1] for k, v in self.daily.items() if v < 0}
            | {k[1] for k, v in self.courses.items() if v < 0}
        )


K = TypeVar("K")


def _nonzero(counter: Counter[K]) -> Counter[K]:
    return Counter({key: n for key, n in counter.items() if n})
