"""Retroactive evaluation: a new or changed badge definition reaches every mentor.

When configuration creates a definition, enables one or changes its
criteria, every mentor of its organisation is evaluated against exactly that
definition, set-based: the criteria tree is compiled into one SQL predicate
over the incremental stats tables, so the database decides for all mentors
at once, however many there are.

* ``threshold``: the mentor's lifetime count over the types
  (``mentor_activity_counts``, grouped, ``HAVING sum >= min_count``);
* ``streak``: the longest run of consecutive active periods in
  ``period_activity_counts`` (gaps and islands: a period's number minus its
  rank is constant along a run);
* ``training_completion``: every course in ``completed_courses``;
* ``tier``: the highest tier held in ``tier_assignments``;
* ``all_of`` / ``any_of``: AND / OR of the parts.

Each leaf is ``peer_mentor_id IN (SELECT … GROUP BY … HAVING …)``.  ``raw``
criteria are never evaluated automatically (the definition is skipped).

New awards are ``backfill`` awards (``earned_at`` now) with an in-app
notification and no push, and an audit row each (``backfill_award``).  A
revocable definition loses its award where its criteria no longer hold
(audited ``revoked``); a non-revocable one keeps every award.

**Concurrent ingestion.**  The evaluation runs after the configuration
committed, a chunk of mentors per transaction, each chunk holding the same
per-mentor advisory locks as ingestion (:func:`worker.db.engine.lock_mentors`)
while it reads the stats and writes.  An event for a mentor of the chunk is
then either committed before the chunk reads (and counted), or processed
after the chunk committed, by an ingestion that reads the new definitions
(and awards itself, at most once: the unique constraint).  The one gap is an
ingestion that read the *old* definitions and is still running when the
chunks are listed: its mentor may not be listed yet (a first event).  So
:func:`evaluate_definitions` first waits for the transactions in progress
(:func:`worker.db.quiesce.wait_for_running_transactions`); after that every
such ingestion has committed and its mentor is listed.  On SQLite every
writer holds the database's write lock for its whole transaction, which
serialises the same way.

:func:`preview` computes the same counts read-only, for a dry run.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from uuid import UUID

from sqlalchemy import (
    Connection,
    Engine,
    and_,
    exists,
    false,
    func,
    literal,
    or_,
    select,
    true,
    union,
)
from sqlalchemy.sql.elements import ColumnElement

from schema.tables import (
    badge_audit,
    badge_definitions,
    completed_courses,
    earned_badges,
    mentor_activity_counts,
    mentors,
    period_activity_counts,
    tier_assignments,
)
from worker.badges.awards import BadgeDefinition, EarnedBadge, definition_from_row
from worker.badges.evaluation import EVALUATION_ACTOR
from worker.core.clock import Clock, as_utc
from worker.db.dates import month_number, week_number
from worker.db.locks import lock_mentors
from worker.db.quiesce import wait_for_running_transactions
from worker.db.sql import in_values, insert_for, new_uuid
from worker.db.unit_of_work import unit_of_work
from worker.model.criteria import (
    AllOfCriterion,
    AnyOfCriterion,
    Criteria,
    RawCriterion,
    StreakCriterion,
    ThresholdCriterion,
    TierCriterion,
    TrainingCompletionCriterion,
    contains_raw,
)
from worker.model.streaks import Period
from worker.notifications.outbox import notify_awards
from worker.notifications.types import OutboxRef

#: Mentors per transaction: bounds the advisory locks held at once and how
#: long an ingestion for one of them may wait.
CHUNK = 2000
BACKFILL_AWARD = "backfill_award"
BACKFILL_REASON = "retroactive evaluation of a new or changed definition"
REVOKE_REASON = "criteria changed: no longer met"

Bounds = tuple[UUID, UUID] | None


@dataclass
class BadgeCounts:
    """Per definition: how many mentors newly earned it and how many lost it."""

    definition_id: UUID
    organisation_id: UUID
    code: str
    revocable: bool
    newly_earned: int = 0
    lost: int = 0


@dataclass
class RetroReport:
    badges: list[BadgeCounts] = field(default_factory=list)
    mentors: int = 0
    awarded: list[EarnedBadge] = field(default_factory=list)
    outbox: list[OutboxRef] = field(default_factory=list)


# --- criteria -> SQL ------------------------------------------------------------


def _within(column: Any, bounds: Bounds) -> ColumnElement[bool]:
    if bounds is None:
        return true()
    between: ColumnElement[bool] = column.between(*bounds)
    return between


def _types(column: Any, types: Collection[str]) -> ColumnElement[bool]:
    return column.in_(sorted(set(types))) if types else true()


def _qualifying(conn: Connection, criterion: Criteria, org: UUID, bounds: Bounds) -> Any:
    """SELECT peer_mentor_id of the organisation's mentors meeting a leaf criterion."""
    match criterion:
        case ThresholdCriterion():
            c = mentor_activity_counts.c
            return (
                select(c.peer_mentor_id)
                .where(
                    c.organisation_id == org,
                    _within(c.peer_mentor_id, bounds),
                    _types(c.activity_type, criterion.activity_types),
                    c.activity_count > 0,
                )
                .group_by(c.peer_mentor_id)
                .having(func.sum(c.activity_count) >= criterion.min_count)
            )
        case StreakCriterion():
            return _streak_reached(conn, criterion, org, bounds)
        case TrainingCompletionCriterion():
            c = completed_courses.c
            courses = sorted(set(criterion.course_ids))
            return (
                select(c.peer_mentor_id)
                .where(
                    c.organisation_id == org,
                    _within(c.peer_mentor_id, bounds),
                    c.course_id.in_(courses),
                    c.activity_count > 0,
                )
                .group_by(c.peer_mentor_id)
                .having(func.count(c.course_id.distinct()) >= len(courses))
            )
        case TierCriterion():
            t = tier_assignments.c
            return select(t.peer_mentor_id).where(
                t.organisation_id == org,
                _within(t.peer_mentor_id, bounds),
                t.tier >= int(criterion.min_tier),
            )
    raise TypeError(f"not a leaf criterion: {criterion!r}")  # pragma: no cover


def _streak_reached(conn: Connection, criterion: StreakCriterion, org: UUID, bounds: Bounds) -> Any:
    """Mentors with ``min_length`` consecutive active periods (gaps and islands)."""
    p = period_activity_counts.c
    number = (
        week_number(conn, p.period_start)
        if criterion.period is Period.WEEK
        else month_number(conn, p.period_start)
    )
    active = (
        select(p.peer_mentor_id, number.label("n"))
        .where(
            p.organisation_id == org,
            _within(p.peer_mentor_id, bounds),
            p.period == criterion.period.value,
            _types(p.activity_type, criterion.activity_types),
            p.activity_count > 0,
        )
        .distinct()
        .subquery("active")
    )
    rank = func.row_number().over(partition_by=active.c.peer_mentor_id, order_by=active.c.n)
    islands = select(active.c.peer_mentor_id, (active.c.n - rank).label("island")).subquery(
        "islands"
    )
    return (
        select(islands.c.peer_mentor_id)
        .group_by(islands.c.peer_mentor_id, islands.c.island)
        .having(func.count() >= criterion.min_length)
    )


def meets(
    conn: Connection, criteria: Criteria, mentor: Any, org: UUID, bounds: Bounds = None
) -> ColumnElement[bool]:
    """A predicate: the mentor in column ``mentor`` meets ``criteria`` (``raw``: never)."""
    match criteria:
        case AllOfCriterion():
            return and_(*(meets(conn, c, mentor, org, bounds) for c in criteria.criteria))
        case AnyOfCriterion():
            return or_(*(meets(conn, c, mentor, org, bounds) for c in criteria.criteria))
        case RawCriterion():
            return false()
    result: ColumnElement[bool] = mentor.in_(_qualifying(conn, criteria, org, bounds))
    return result


# --- reading the definitions -------------------------------------------------------


def load_definitions(conn: Connection, definition_ids: Collection[UUID]) -> list[BadgeDefinition]:
    """The enabled, automatically evaluated definitions among ``definition_ids``.

    Disabled ones (the change may have been undone meanwhile) and ``raw`` ones
    (manual-only) are left out: they award and revoke nothing.
    """
    if not definition_ids:
        return []
    rows = conn.execute(
        select(badge_definitions)
        .where(badge_definitions.c.id.in_(sorted(definition_ids)))
        .order_by(badge_definitions.c.organisation_id, badge_definitions.c.code)
    )
    return [
        d
        for d in (definition_from_row(r) for r in rows)
        if d.enabled and not contains_raw(d.criteria)
    ]


def _held(definition: BadgeDefinition, mentor: Any) -> Any:
    e = earned_badges.c
    return exists().where(e.badge_definition_id == definition.id, e.peer_mentor_id == mentor)


# --- preview (read-only) ----------------------------------------------------------


def preview(conn: Connection, definitions: Sequence[BadgeDefinition]) -> list[BadgeCounts]:
    """What evaluating ``definitions`` now would do, counted, writing nothing."""
    result = []
    m, e = mentors.c, earned_badges.c
    for d in definitions:
        counts = BadgeCounts(d.id, d.organisation_id, d.code, d.revocable)
        counts.newly_earned = int(
            conn.execute(
                select(func.count()).where(
                    m.organisation_id == d.organisation_id,
                    meets(conn, d.criteria, m.peer_mentor_id, d.organisation_id),
                    ~_held(d, m.peer_mentor_id),
                )
            ).scalar_one()
        )
        if d.revocable:
            counts.lost = int(
                conn.execute(
                    select(func.count()).where(
                        e.badge_definition_id == d.id,
                        ~meets(conn, d.criteria, e.peer_mentor_id, d.organisation_id),
                    )
                ).scalar_one()
            )
        result.append(counts)
    return result


# --- evaluation (writes) -----------------------------------------------------------


def organisation_mentors(
    conn: Connection, organisation_id: UUID, definitions: Sequence[BadgeDefinition]
) -> list[UUID]:
    """Everyone to evaluate, in id order: the organisation's mentors and the holders.

    Holders of a revocable definition without any stats (a manual award) are
    included so that they are re-checked too.
    """
    m, e = mentors.c, earned_badges.c
    members = select(m.peer_mentor_id.label("id")).where(m.organisation_id == organisation_id)
    revocable = [d.id for d in definitions if d.revocable]
    query: Any = members
    if revocable:
        query = union(
            members,
            select(e.peer_mentor_id.label("id")).where(e.badge_definition_id.in_(revocable)),
        )
    return sorted(conn.scalars(select(query.subquery().c.id)))


def evaluate_chunk(
    conn: Connection,
    definitions: Sequence[BadgeDefinition],
    chunk: Sequence[UUID],
    *,
    now: datetime,
) -> tuple[list[EarnedBadge], list[tuple[UUID, int]]]:
    """Award and revoke ``definitions`` (one organisation) for the mentors in ``chunk``.

    ``chunk`` is sorted; it is locked against ingestion for the rest of the
    transaction.  Returns the new awards and (definition id, revoked count).
    """
    if not chunk or not definitions:
        return [], []
    lock_mentors(conn, chunk)
    bounds = (chunk[0], chunk[-1])
    awarded: list[EarnedBadge] = []
    revoked: list[tuple[UUID, int]] = []
    for d in definitions:
        awarded += _award(conn, d, chunk, bounds, now)
        if d.revocable:
            revoked.append((d.id, _revoke(conn, d, chunk, bounds, now)))
    _audit_awards(conn, [b.id for b in awarded], now=now)
    return awarded, revoked


def _award(
    conn: Connection, d: BadgeDefinition, chunk: Sequence[UUID], bounds: Bounds, now: datetime
) -> list[EarnedBadge]:
    m, e = mentors.c, earned_badges.c
    org = d.organisation_id
    qualifying = (
        select(
            new_uuid(conn),
            literal(d.id, e.badge_definition_id.type),
            m.peer_mentor_id,
            literal(org, e.organisation_id.type),
            literal(now, e.earned_at.type),
            literal("backfill", e.award_source.type),
        )
        .where(
            m.organisation_id == org,
            in_values(conn, m.peer_mentor_id, chunk),
            meets(conn, d.criteria, m.peer_mentor_id, org, bounds),
            ~_held(d, m.peer_mentor_id),
        )
        .order_by(m.peer_mentor_id)
    )
    stmt = (
        insert_for(conn, earned_badges)
        .from_select(
            [
                "id",
                "badge_definition_id",
                "peer_mentor_id",
                "organisation_id",
                "earned_at",
                "award_source",
            ],
            qualifying,
        )
        .on_conflict_do_nothing(index_elements=["badge_definition_id", "peer_mentor_id"])
        .returning(e.id, e.peer_mentor_id, e.earned_at)
    )
    # Rows straight from the database: no need to validate them again.
    return [
        EarnedBadge.model_construct(
            id=row.id,
            badge_definition_id=d.id,
            code=d.code,
            name=d.name,
            peer_mentor_id=row.peer_mentor_id,
            organisation_id=org,
            earned_at=as_utc(row.earned_at),
        )
        for row in conn.execute(stmt)
    ]


def _revoke(
    conn: Connection, d: BadgeDefinition, chunk: Sequence[UUID], bounds: Bounds, now: datetime
) -> int:
    e = earned_badges.c
    rows = conn.execute(
        earned_badges.delete()
        .where(
            e.badge_definition_id == d.id,
            in_values(conn, e.peer_mentor_id, chunk),
            ~meets(conn, d.criteria, e.peer_mentor_id, d.organisation_id, bounds),
        )
        .returning(e.id, e.peer_mentor_id, e.earned_at)
    ).all()
    lost = [
        EarnedBadge(
            id=row.id,
            badge_definition_id=d.id,
            code=d.code,
            name=d.name,
            peer_mentor_id=row.peer_mentor_id,
            organisation_id=d.organisation_id,
            earned_at=as_utc(row.earned_at),
        )
        for row in rows
    ]
    _audit(conn, lost, action="revoked", reason=REVOKE_REASON, now=now)
    return len(lost)


def _audit_awards(conn: Connection, earned_ids: Sequence[UUID], *, now: datetime) -> None:
    """One ``backfill_award`` audit row per new award, copied over in one statement."""
    if not earned_ids:
        return
    e, a = earned_badges.c, badge_audit.c
    conn.execute(
        badge_audit.insert().from_select(
            [
                "action",
                "earned_badge_id",
                "badge_definition_id",
                "peer_mentor_id",
                "organisation_id",
                "earned_at",
                "reason",
                "actor",
                "recorded_at",
            ],
            select(
                literal(BACKFILL_AWARD, a.action.type),
                e.id,
                e.badge_definition_id,
                e.peer_mentor_id,
                e.organisation_id,
                e.earned_at,
                literal(BACKFILL_REASON, a.reason.type),
                literal(EVALUATION_ACTOR, a.actor.type),
                literal(now, a.recorded_at.type),
            ).where(in_values(conn, e.id, earned_ids)),
        )
    )


def _audit(
    conn: Connection, items: Sequence[EarnedBadge], *, action: str, reason: str, now: datetime
) -> None:
    if items:
        conn.execute(
            badge_audit.insert(),
            [
                {
                    "action": action,
                    "earned_badge_id": b.id,
                    "badge_definition_id": b.badge_definition_id,
                    "peer_mentor_id": b.peer_mentor_id,
                    "organisation_id": b.organisation_id,
                    "earned_at": b.earned_at,
                    "reason": reason,
                    "actor": EVALUATION_ACTOR,
                    "recorded_at": now,
                }
                for b in items
            ],
        )


@dataclass
class Plan:
    """What :func:`run_plan` will evaluate: definitions and mentors per organisation."""

    definitions: dict[UUID, list[BadgeDefinition]]
    mentors: dict[UUID, list[UUID]]

    @property
    def mentor_count(self) -> int:
        return sum(len(m) for m in self.mentors.values())


def plan(engine: Engine, definition_ids: Collection[UUID], *, wait_timeout: float = 60.0) -> Plan:
    """Wait for running transactions, then list the definitions and mentors to evaluate."""
    wait_for_running_transactions(engine, timeout=wait_timeout)
    with engine.connect() as conn:
        by_org: dict[UUID, list[BadgeDefinition]] = {}
        for d in load_definitions(conn, definition_ids):
            by_org.setdefault(d.organisation_id, []).append(d)
        members = {org: organisation_mentors(conn, org, ds) for org, ds in by_org.items()}
        conn.rollback()
    return Plan(by_org, members)


def run_plan(
    engine: Engine,
    work: Plan,
    *,
    clock: Clock,
    chunk_size: int = CHUNK,
    progress: Callable[[int], Any] | None = None,
) -> RetroReport:
    """Evaluate the plan a chunk of mentors per committed transaction.

    ``progress`` receives the number of mentors each committed chunk covered.
    Each chunk's in-app notifications are sent once it committed.
    """
    report = RetroReport(mentors=work.mentor_count)
    counts = {
        d.id: BadgeCounts(d.id, d.organisation_id, d.code, d.revocable)
        for ds in work.definitions.values()
        for d in ds
    }
    report.badges = list(counts.values())
    for org, definitions in work.definitions.items():
        ids = work.mentors[org]
        for start in range(0, len(ids), chunk_size):
            chunk = ids[start : start + chunk_size]
            with unit_of_work(engine) as conn:
                now = clock.now()
                awarded, revoked = evaluate_chunk(conn, definitions, chunk, now=now)
                refs = notify_awards(conn, awarded, now=now, backfill=True)
            for earned in awarded:
                counts[earned.badge_definition_id].newly_earned += 1
            for definition_id, n in revoked:
                counts[definition_id].lost += n
            report.awarded += awarded
            report.outbox += refs
            if progress is not None:
                progress(len(chunk))
    return report


def evaluate_definitions(
    engine: Engine,
    definition_ids: Collection[UUID],
    *,
    clock: Clock,
    chunk_size: int = CHUNK,
) -> RetroReport:
    """Evaluate every mentor of their organisations against ``definition_ids`` (committed)."""
    return run_plan(engine, plan(engine, definition_ids), clock=clock, chunk_size=chunk_size)
