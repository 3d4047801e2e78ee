"""The notification outbox: rows written in the same transaction as what caused them.

Each notification is one row per channel (``in_app``, ``push``), keyed by a
dedup key such as ``badge_earned:<earned badge id>`` so writing it twice is
harmless.  Delivery happens after commit (``worker.delivery``); the relay
re-sends rows whose delivery task never got out.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from enum import StrEnum
from typing import Any, NamedTuple
from uuid import UUID, uuid4

from sqlalchemy import Connection

from schema.tables import notification_outbox
from worker.awards import EarnedBadge
from worker.sql import insert_for


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
