"""The notification outbox: rows written in the same transaction as what caused them.

Each notification is one row per channel (``in_app``, ``push``), keyed by a
dedup key such as ``badge_earned:<earned badge id>`` so writing it twice is
harmless.  Delivery happens after commit (``worker.notifications.delivery``); the relay
re-sends rows whose delivery task never got out.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from enum import StrEnum
from typing import Any, NamedTuple
from uuid import UUID, uuid4

from sqlalchemy import Connection, text

from schema.tables import notification_outbox
from worker.badges.awards import EarnedBadge
from worker.db.sql import insert_for


class Channel(StrEnum):
    IN_APP = "in_app"
    PUSH = "push"


class OutboxState(StrEnum):
    PENDING = "pending"
    SENT = "sent"
    FAILED = "failed"  # a delivery attempt failed; another will follow
    DEAD = "dead"  # out of attempts, or a permanent error
    SKIPPED = "skipped"  # deliberately not delivered (no gateway, backfill, revoked)


class OutboxRef(NamedTuple):
    id: UUID
    channel: Channel


BADGE_EARNED = "badge_earned"
TIER_PROMOTED = "tier_promoted"
BACKFILL_SKIP_REASON = "backfill award: in-app only, no push"


def badge_payload(earned: EarnedBadge) -> dict[str, Any]:
    return {
        "earned_badge_id": str(earned.id),
        "badge_definition_id": str(earned.badge_definition_id),
        "code": earned.code,
        "name": earned.name,
        "earned_at": earned.earned_at.isoformat(),
    }


def write_notifications(
    conn: Connection,
    items: Iterable[tuple[str, str, UUID, UUID, dict[str, Any]]],
    *,
    now: datetime,
    backfill: bool = False,
) -> list[OutboxRef]:
    """Write outbox rows for ``(kind, dedup_key, org, mentor, payload)`` items.

    Returns ``(id, channel)`` of the rows to dispatch now.  Backfill notifications get an
    in-app row but their push row is written as ``skipped``: importing years of
    history must not flood mentors' phones.
    """
    rows = []
    for kind, dedup_key, org, mentor, payload in items:
        for channel in Channel:
            skip_push = backfill and channel is Channel.PUSH
            rows.append(
                {
                    "id": uuid4(),
                    "dedup_key": dedup_key,
                    "channel": channel.value,
                    "kind": kind,
                    "peer_mentor_id": mentor,
                    "organisation_id": org,
                    "payload": payload,
                    "state": OutboxState.SKIPPED if skip_push else OutboxState.PENDING,
                    "backfill": backfill,
                    "attempts": 0,
                    "last_error": BACKFILL_SKIP_REASON if skip_push else None,
                    "created_at": now,
                    "updated_at": now,
                }
            )
    if not rows:
        return []
    stmt = (
        insert_for(conn, notification_outbox)
        .on_conflict_do_nothing(index_elements=["dedup_key", "channel"])
        .returning(
            notification_outbox.c.id, notification_outbox.c.channel, notification_outbox.c.state
        )
    )
    return [
        OutboxRef(row.id, Channel(row.channel))
        for row in conn.execute(stmt, rows)
        if row.state == OutboxState.PENDING
    ]


def write_award_notifications(
    conn: Connection, awards: Iterable[EarnedBadge], *, now: datetime, backfill: bool = False
) -> list[OutboxRef]:
    return write_notifications(
        conn,
        (
            (
                BADGE_EARNED,
                f"{BADGE_EARNED}:{e.id}",
                e.organisation_id,
                e.peer_mentor_id,
                badge_payload(e),
            )
            for e in awards
        ),
        now=now,
        backfill=backfill,
    )


#: One row per channel, in the order :func:`write_notifications` writes them.
_BULK_AWARD_NOTIFICATIONS = text(
    """
    WITH awards AS (
        SELECT * FROM unnest(
            CAST(:ids AS text[]), CAST(:definition_ids AS text[]), CAST(:codes AS text[]),
            CAST(:names AS text[]), CAST(:mentor_ids AS uuid[]), CAST(:organisation_ids AS uuid[]),
            CAST(:earned_at AS text[])
        ) WITH ORDINALITY AS a(id, badge_definition_id, code, name, peer_mentor_id,
                               organisation_id, earned_at, n)
    ), inserted AS (
        INSERT INTO notification_outbox (id, dedup_key, channel, kind, peer_mentor_id,
            organisation_id, payload, state, backfill, attempts, last_error, created_at,
            updated_at)
        SELECT gen_random_uuid(), CAST(:kind AS text) || ':' || a.id, c.channel, :kind,
            a.peer_mentor_id, a.organisation_id,
            jsonb_build_object('earned_badge_id', a.id, 'badge_definition_id',
                a.badge_definition_id, 'code', a.code, 'name', a.name, 'earned_at', a.earned_at),
            c.state, :backfill, 0, c.last_error, :now, :now
        FROM awards a CROSS JOIN (VALUES
            (1, 'in_app', 'pending', CAST(NULL AS text)),
            (2, 'push', CAST(:push_state AS text), CAST(:push_error AS text))
        ) AS c(n, channel, state, last_error)
        ORDER BY a.n, c.n
        ON CONFLICT (dedup_key, channel) DO NOTHING
        RETURNING id, channel, state
    )
    SELECT id, channel FROM inserted WHERE state = 'pending'
    """
)


def write_award_notifications_bulk(
    conn: Connection, awards: Sequence[EarnedBadge], *, now: datetime, backfill: bool = False
) -> list[OutboxRef]:
    """The rows :func:`write_award_notifications` writes, in one set-based statement.

    For many awards at once (bulk import).  On PostgreSQL the awards travel
    as a few arrays and the database builds both channels' rows and their
    payloads (``INSERT … SELECT``), so nothing is built per row in Python and
    only the pending rows' ids come back.  Elsewhere this is
    :func:`write_award_notifications`.
    """
    if not awards:
        return []
    if conn.dialect.name != "postgresql":
        return write_award_notifications(conn, awards, now=now, backfill=backfill)
    payloads = [badge_payload(e) for e in awards]
    rows = conn.execute(
        _BULK_AWARD_NOTIFICATIONS,
        {
            "ids": [p["earned_badge_id"] for p in payloads],
            "definition_ids": [p["badge_definition_id"] for p in payloads],
            "codes": [p["code"] for p in payloads],
            "names": [p["name"] for p in payloads],
            "mentor_ids": [e.peer_mentor_id for e in awards],
            "organisation_ids": [e.organisation_id for e in awards],
            "earned_at": [p["earned_at"] for p in payloads],
            "kind": BADGE_EARNED,
            "backfill": backfill,
            "push_state": OutboxState.SKIPPED.value if backfill else OutboxState.PENDING.value,
            "push_error": BACKFILL_SKIP_REASON if backfill else None,
            "now": now,
        },
    )
    return [OutboxRef(row.id, Channel(row.channel)) for row in rows]
