"""What follows a period's promotions: the plain ``tier`` badges they unlock, set-based.

A promotion writes its assignment with ``assigned_at = now`` (the run's clock),
so the promotions of this run in a period are the period's assignments with
``assigned_at = now``.  From those, one ``INSERT … SELECT`` per plain ``tier``
badge definition awards the badge (``ON CONFLICT DO NOTHING``); the
``badge_earned`` outbox rows of those awards are written by
:func:`worker.notifications.outbox.notify_awards`.

Were another run with the very same clock to promote rows of the same period
concurrently, its promotions would match too: awards are unique by
``(badge_definition_id, peer_mentor_id)`` and outbox rows by ``(dedup_key,
channel)``, so nothing is written twice, and only rows this statement
inserted come back.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

from sqlalchemy import (
    Connection,
    exists,
    literal,
    select,
)

from schema.tables import earned_badges, tier_assignments
from worker.badges.awards import (
    BadgeDefinition,
    EarnedBadge,
    enabled_definitions,
    insert_awards_from,
)
from worker.db.sql import new_uuid
from worker.model.criteria import TierCriterion, contains_raw, uses_tier
from worker.model.tiers import TierAwardPeriod
from worker.notifications.outbox import notify_awards
from worker.notifications.types import OutboxRef


def _promoted(period: TierAwardPeriod, now: datetime) -> Any:
    """This run's promotions in ``period``: its assignments written at ``now``."""
    return select(tier_assignments).where(
        tier_assignments.c.award_period_id == period.id,
        tier_assignments.c.assigned_at == now,
    )


def tier_definitions(conn: Connection, organisation_id: UUID) -> list[BadgeDefinition]:
    """The organisation's enabled, automatic definitions with a ``tier`` criterion."""
    return [
        d
        for d in enabled_definitions(conn, [organisation_id])
        if uses_tier(d.criteria) and not contains_raw(d.criteria)
    ]


def is_plain_tier(definition: BadgeDefinition) -> bool:
    """A definition whose whole criteria is one ``tier`` criterion (awarded set-based)."""
    return isinstance(definition.criteria, TierCriterion)


def award_tier_badge(
    conn: Connection, period: TierAwardPeriod, definition: BadgeDefinition, *, now: datetime
) -> tuple[list[EarnedBadge], list[OutboxRef]]:
    """Award a plain ``tier`` badge to this run's promoted mentors in ``period`` who hold
    (in any period) a tier ≥ its ``min_tier``, with their ``badge_earned`` outbox rows.

    Exactly what :func:`worker.badges.evaluation.evaluate_mentors` decides for them:
    the snapshot's ``highest_tier`` is the highest assignment of the mentor in
    any period.  Returns the new awards and the outbox rows to dispatch.
    """
    criteria = definition.criteria
    if not isinstance(criteria, TierCriterion):
        raise ValueError(f"{definition.code} is not a plain tier badge")
    awarded = _insert_awards(conn, definition, _award_rows(conn, period, definition, criteria, now))
    if not awarded:
        return [], []
    return awarded, notify_awards(conn, awarded, now=now)


def _award_rows(
    conn: Connection,
    period: TierAwardPeriod,
    definition: BadgeDefinition,
    criteria: TierCriterion,
    now: datetime,
) -> Any:
    """The ``earned_badges`` rows to insert: promoted mentors holding a tier ≥ ``min_tier``."""
    promoted = _promoted(period, now).subquery("promoted")
    held = tier_assignments.alias("held")
    return (
        select(
            new_uuid(conn),
            literal(definition.id, earned_badges.c.badge_definition_id.type),
            promoted.c.peer_mentor_id,
            literal(definition.organisation_id, earned_badges.c.organisation_id.type),
            literal(now, earned_badges.c.earned_at.type),
            literal("evaluation"),
        )
        .where(
            promoted.c.organisation_id == definition.organisation_id,
            exists().where(
                held.c.peer_mentor_id == promoted.c.peer_mentor_id,
                held.c.tier >= int(criteria.min_tier),
            ),
        )
        .order_by(promoted.c.peer_mentor_id)
    )


def _insert_awards(conn: Connection, definition: BadgeDefinition, rows: Any) -> list[EarnedBadge]:
    """Insert ``rows`` (``ON CONFLICT DO NOTHING``); the awards inserted, by mentor id."""
    return insert_awards_from(conn, definition, rows)
