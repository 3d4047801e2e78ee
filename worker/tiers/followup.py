"""What follows a period's promotions, set-based (SQL): outbox rows and tier badges.

A promotion writes its assignment with ``assigned_at = now`` (the run's clock),
so the promotions of this run in a period are the period's assignments with
``assigned_at = now``.  From those, one ``INSERT … SELECT`` per period writes
the ``tier_promoted`` outbox rows (one per channel, the two-row channel
relation cross-joined), and one per plain ``tier`` badge definition awards the
badge (``ON CONFLICT DO NOTHING``); the ``badge_earned`` outbox rows of
those awards go through :func:`worker.notifications.outbox.write_award_notifications_bulk`,
the writer the history import uses too.  Rows, dedup keys and payloads are
exactly those that :func:`worker.notifications.outbox.write_notifications` writes for the
same items (a test compares them); payloads are built by the database
(``jsonb_build_object`` on PostgreSQL, ``json_object`` on SQLite).

Were another run with the very same clock to promote rows of the same period
concurrently, its promotions would match too: outbox rows are unique by
``(dedup_key, channel)`` and awards by ``(badge_definition_id,
peer_mentor_id)``, so nothing is written twice, and only rows this statement
inserted come back to be dispatched.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

from sqlalchemy import (
    Connection,
    String,
    case,
    cast,
    exists,
    literal,
    select,
    true,
    union_all,
)

from schema.tables import earned_badges, notification_outbox, tier_assignments
from worker.badges.awards import BadgeDefinition, EarnedBadge, enabled_definitions
from worker.db.sql import insert_for, json_object, new_uuid, text_value, uuid_text
from worker.model.criteria import TierCriterion, contains_raw, uses_tier
from worker.model.tiers import TierAwardPeriod, TierLevel
from worker.notifications.outbox import (
    TIER_PROMOTED,
    Channel,
    OutboxRef,
    OutboxState,
    write_award_notifications_bulk,
)

_OUTBOX_COLUMNS = [
    "id",
    "dedup_key",
    "channel",
    "kind",
    "peer_mentor_id",
    "organisation_id",
    "payload",
    "state",
    "backfill",
    "attempts",
    "created_at",
    "updated_at",
]


def _channels() -> Any:
    """The two channels as a tiny relation, to cross-join with the rows to notify."""
    return union_all(
        *(select(text_value(channel.value).label("channel")) for channel in Channel)
    ).subquery("channels")


def _promoted(period: TierAwardPeriod, now: datetime) -> Any:
    return select(tier_assignments).where(
        tier_assignments.c.award_period_id == period.id,
        tier_assignments.c.assigned_at == now,
    )


def _write_outbox(conn: Connection, rows: Any, *, kind: str, now: datetime) -> list[OutboxRef]:
    """Insert pending outbox rows for ``rows`` (dedup_key, org, mentor, payload), once per channel."""
    channels = _channels()
    query = (
        select(
            new_uuid(conn),
            rows.c.dedup_key,
            channels.c.channel,
            literal(kind),
            rows.c.peer_mentor_id,
            rows.c.organisation_id,
            rows.c.payload,
            literal(OutboxState.PENDING.value),
            literal(False),
            literal(0),
            literal(now, notification_outbox.c.created_at.type),
            literal(now, notification_outbox.c.updated_at.type),
        )
        .select_from(rows.join(channels, true()))
        # The WHERE also resolves SQLite's INSERT…SELECT…ON CONFLICT parsing ambiguity.
        .where(true())
        # A fixed row order: overlapping runs take row locks in the same order.
        .order_by(rows.c.peer_mentor_id, channels.c.channel, rows.c.dedup_key)
    )
    stmt = (
        insert_for(conn, notification_outbox)
        .from_select(_OUTBOX_COLUMNS, query)
        .on_conflict_do_nothing(index_elements=["dedup_key", "channel"])
        .returning(notification_outbox.c.id, notification_outbox.c.channel)
    )
    # One fetchall: about 0.3 s less than fetching row by row for 350,000 RETURNING rows.
    return [OutboxRef(row_id, _CHANNELS[channel]) for row_id, channel in conn.execute(stmt).all()]


_CHANNELS = {channel.value: channel for channel in Channel}


def write_promotion_notifications(
    conn: Connection, period: TierAwardPeriod, *, now: datetime, assigned_at: str
) -> list[OutboxRef]:
    """``tier_promoted`` outbox rows for this run's promotions in ``period``.

    ``assigned_at`` is the payload's ``assigned_at`` text (every promotion of
    the run has the same one: ``now``, as the database hands it back).
    """
    promoted = _promoted(period, now).subquery("promoted")
    label = case(
        *((promoted.c.tier == int(level), text_value(level.label)) for level in TierLevel),
    )
    rows = select(
        (
            literal(f"{TIER_PROMOTED}:")
            + uuid_text(conn, promoted.c.id)
            + literal(":")
            + cast(promoted.c.tier, String)
        ).label("dedup_key"),
        promoted.c.organisation_id,
        promoted.c.peer_mentor_id,
        json_object(
            conn,
            [
                ("tier", label),
                ("tier_level", promoted.c.tier),
                ("award_period_id", text_value(str(period.id))),
                ("award_period_name", text_value(period.name)),
                ("assigned_at", text_value(assigned_at)),
            ],
        ).label("payload"),
    ).subquery("to_notify")
    return _write_outbox(conn, rows, kind=TIER_PROMOTED, now=now)


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
    promoted = _promoted(period, now).subquery("promoted")
    held = tier_assignments.alias("held")
    query = (
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
            query,
        )
        .on_conflict_do_nothing(index_elements=["badge_definition_id", "peer_mentor_id"])
        .returning(earned_badges.c.id, earned_badges.c.peer_mentor_id, earned_badges.c.earned_at)
    )
    awarded = sorted(
        (
            EarnedBadge(
                id=row.id,
                badge_definition_id=definition.id,
                code=definition.code,
                name=definition.name,
                peer_mentor_id=row.peer_mentor_id,
                organisation_id=definition.organisation_id,
                earned_at=row.earned_at,
            )
            for row in conn.execute(stmt).all()
        ),
        key=lambda e: e.peer_mentor_id,
    )
    if not awarded:
        return [], []
    return awarded, write_award_notifications_bulk(conn, awarded, now=now)
