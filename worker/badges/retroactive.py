"""Retroactive evaluation: a new or changed badge definition reaches every mentor.

When configuration creates a definition, enables one or changes its
criteria, every mentor of its organisation is evaluated against exactly that
definition, set-based: :mod:`worker.badges.criteria_sql` compiles the
criteria tree into one SQL predicate over the incremental stats tables, so
the database decides for all mentors at once, however many there are.
``raw`` criteria are never evaluated automatically (the definition is
skipped).

New awards are ``backfill`` awards (``earned_at`` now) with an in-app
notification and no push, and an audit row each (``backfill_award``).  A
revocable definition loses its award where its criteria no longer hold
(audited ``revoked``); a non-revocable one keeps every award.

**Concurrent ingestion.**  The evaluation runs after the configuration
committed, a chunk of mentors per transaction, each chunk holding the same
per-mentor advisory locks as ingestion (:func:`worker.db.locks.lock_mentors`)
while it reads the stats and writes.  An event for a mentor of the chunk is
then either committed before the chunk reads (and counted), or processed
after the chunk committed, by an ingestion that reads the new definitions
(and awards itself, at most once: the unique constraint).  The one gap is an
ingestion that read the *old* definitions and is still running when the
chunks are listed: its mentor may not be listed yet (a first event).  So
:func:`worker.configuration.followup.plan` first waits for the transactions in progress
(:func:`worker.db.quiesce.wait_for_running_transactions`); after that every
such ingestion has committed and its mentor is listed.  On SQLite every
writer holds the database's write lock for its whole transaction, which
serialises the same way.

:func:`preview` computes the same counts read-only, for a dry run.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

from sqlalchemy import (
    Connection,
    func,
    literal,
    select,
    union,
)

from schema.tables import (
    badge_audit,
    badge_definitions,
    earned_badges,
    mentors,
)
from worker.badges.awards import BadgeDefinition, EarnedBadge, definition_from_row
from worker.badges.backfill import award_qualifying, held
from worker.badges.criteria_sql import Bounds, meets
from worker.badges.evaluation import EVALUATION_ACTOR
from worker.db.locks import lock_mentors
from worker.db.sql import in_values
from worker.model.criteria import (
    contains_raw,
)

#: Mentors per transaction: bounds the advisory locks held at once and how
#: long an ingestion for one of them may wait.
CHUNK = 2000
BACKFILL_AWARD = "backfill_award"
BACKFILL_REASON = "retroactive evaluation of a new or changed definition"
REVOKE_REASON = "criteria changed: no longer met"


@dataclass
class BadgeCounts:
    """Per definition: how many mentors newly earned it and how many lost it."""

    definition_id: UUID
    organisation_id: UUID
    code: str
    revocable: bool
    newly_earned: int = 0
    lost: int = 0


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
                    ~held(d, m.peer_mentor_id),
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
        awarded += award_qualifying(conn, d, chunk, bounds, now)
        if d.revocable:
            revoked.append((d.id, _revoke(conn, d, chunk, bounds, now)))
    _audit_awards(conn, [b.id for b in awarded], now=now)
    return awarded, revoked


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
    lost = [d.earned(row.id, row.peer_mentor_id, row.earned_at) for row in rows]
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
