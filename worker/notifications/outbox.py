"""The notification outbox: rows written in the same transaction as what caused them.

Each notification is one row per channel (``in_app``, and ``push`` while a
push gateway is configured: see :func:`written_channels`), keyed by a dedup
key such as ``badge_earned:<earned badge id>`` so writing it twice is
harmless.  :func:`write_outbox` is the one writer; each notification kind has
one payload builder here (:func:`badge_earned`, :func:`tier_promotions`).  The
rows it writes are dispatched once the unit of work commits
(:mod:`worker.notifications.dispatch`); the relay re-sends rows whose delivery
task never got out.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any, NamedTuple
from uuid import UUID, uuid4

from pydantic_core import to_json
from sqlalchemy import Connection, text

from schema.tables import notification_outbox
from worker.badges.awards import EarnedBadge
from worker.core.settings import get_settings
from worker.db.sql import insert_for
from worker.model.tiers import Promotion
from worker.notifications.dispatch import dispatch_after_commit
from worker.notifications.types import (
    BADGE_EARNED,
    TIER_PROMOTED,
    Channel,
    OutboxRef,
    OutboxState,
)

log = logging.getLogger(__name__)

BACKFILL_SKIP_REASON = "backfill award: in-app only, no push"
_push_off_logged = False


def written_channels() -> tuple[Channel, ...]:
    """The channels a notification gets an outbox row for, in this process.

    ``push`` only while a push gateway is configured (``PUSH_GATEWAY_URL``):
    with the push channel disabled a push row could only ever be marked
    ``skipped``, so none is written, and the first write says so in the log.
    Every process of a deployment (worker, beat, web, one-off commands) reads
    the same configuration.
    """
    global _push_off_logged
    if get_settings().push_gateway_url:
        return (Channel.IN_APP, Channel.PUSH)
    if not _push_off_logged:
        _push_off_logged = True
        log.info(
            "push channel disabled (PUSH_GATEWAY_URL unset): notifications are written in-app only"
        )
    return (Channel.IN_APP,)


class Notification(NamedTuple):
    """One notification to write: a row per channel."""

    kind: str
    dedup_key: str
    organisation_id: UUID
    peer_mentor_id: UUID
    payload: dict[str, Any]


def badge_earned(earned: EarnedBadge) -> Notification:
    """The ``badge_earned`` notification of an award."""
    earned_id = str(earned.id)
    return Notification(
        BADGE_EARNED,
        f"{BADGE_EARNED}:{earned_id}",
        earned.organisation_id,
        earned.peer_mentor_id,
        {
            "earned_badge_id": earned_id,
            "badge_definition_id": str(earned.badge_definition_id),
            "code": earned.code,
            "name": earned.name,
            "earned_at": earned.earned_at.isoformat(),
        },
    )


def tier_promotions(promotions: Iterable[Promotion]) -> list[Notification]:
    """The ``tier_promoted`` notifications of ``promotions``, in their order.

    What a run's promotions share (the period's id, the run's clock) is
    turned into text once per distinct value, not once per promotion: a tier
    run may promote tens of thousands of mentors.
    """
    shared: dict[tuple[UUID, datetime], tuple[str, str]] = {}
    notifications = []
    for p in promotions:
        key = (p.award_period_id, p.assigned_at)
        period_text = shared.get(key)
        if period_text is None:
            period_text = shared[key] = (str(p.award_period_id), p.assigned_at.isoformat())
        level = int(p.tier)
        notifications.append(
            Notification(
                TIER_PROMOTED,
                f"{TIER_PROMOTED}:{p.assignment_id}:{level}",
                p.organisation_id,
                p.peer_mentor_id,
                {
                    "tier": p.tier.label,
                    "tier_level": level,
                    "award_period_id": period_text[0],
                    "award_period_name": p.award_period_name,
                    "assigned_at": period_text[1],
                },
            )
        )
    return notifications


def notify_awards(
    conn: Connection, awards: Iterable[EarnedBadge], *, now: datetime, backfill: bool = False
) -> list[OutboxRef]:
    """Write the ``badge_earned`` outbox rows of ``awards`` (see :func:`write_outbox`)."""
    return write_outbox(conn, [badge_earned(e) for e in awards], now=now, backfill=backfill)


def write_outbox(
    conn: Connection,
    notifications: Sequence[Notification],
    *,
    now: datetime,
    backfill: bool = False,
) -> list[OutboxRef]:
    """Write one outbox row per channel for each notification, in the caller's transaction.

    Returns ``(id, channel)`` of the pending rows written, which are also
    registered for dispatch once the unit of work commits.  Rows already
    written (same dedup key and channel) are left alone.  The channels are
    :func:`written_channels`.  Backfill notifications get an in-app row but
    their push row is written as ``skipped``: importing years of history must
    not flood mentors' phones.

    On PostgreSQL the notifications travel as one JSON array and one
    ``INSERT … SELECT`` builds every channel's rows, so many at once (an
    import, a tier run) cost one statement.
    """
    if not notifications:
        return []
    channels = written_channels()
    write = _write_postgres if conn.dialect.name == "postgresql" else _write_rows
    refs = write(conn, notifications, now=now, backfill=backfill, channels=channels)
    dispatch_after_commit(conn, refs)
    return refs


def _push_state(backfill: bool) -> tuple[OutboxState, str | None]:
    return (OutboxState.SKIPPED, BACKFILL_SKIP_REASON) if backfill else (OutboxState.PENDING, None)


def _write_rows(
    conn: Connection,
    notifications: Sequence[Notification],
    *,
    now: datetime,
    backfill: bool,
    channels: tuple[Channel, ...],
) -> list[OutboxRef]:
    push_state, push_error = _push_state(backfill)
    rows = [
        {
            "id": uuid4(),
            "dedup_key": n.dedup_key,
            "channel": channel.value,
            "kind": n.kind,
            "peer_mentor_id": n.peer_mentor_id,
            "organisation_id": n.organisation_id,
            "payload": n.payload,
            "state": push_state if channel is Channel.PUSH else OutboxState.PENDING,
            "backfill": backfill,
            "attempts": 0,
            "last_error": push_error if channel is Channel.PUSH else None,
            "created_at": now,
            "updated_at": now,
        }
        for n in notifications
        for channel in channels
    ]
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


#: Both channels' rows of each notification, in input order then channel order
#: (the push row only with ``:push``).  The notifications travel as one JSON
#: array of ``[kind, dedup_key, organisation_id, peer_mentor_id, payload]``
#: arrays (:class:`Notification`'s field order): psycopg would escape every
#: payload of a ``text[]`` parameter element by element, which costs more
#: than the insert itself for tens of thousands of rows.
_WRITE_OUTBOX = text(
    """
    WITH items AS (
        SELECT e.n, e.item->>0 AS kind, e.item->>1 AS dedup_key,
            CAST(e.item->>2 AS uuid) AS organisation_id,
            CAST(e.item->>3 AS uuid) AS peer_mentor_id,
            e.item->4 AS payload
        FROM jsonb_array_elements(CAST(:items AS jsonb)) WITH ORDINALITY AS e(item, n)
    ), inserted AS (
        INSERT INTO notification_outbox (id, dedup_key, channel, kind, peer_mentor_id,
            organisation_id, payload, state, backfill, attempts, last_error, created_at,
            updated_at)
        SELECT gen_random_uuid(), a.dedup_key, c.channel, a.kind, a.peer_mentor_id,
            a.organisation_id, a.payload, c.state, :backfill, 0, c.last_error, :now, :now
        FROM items a CROSS JOIN (VALUES
            (1, 'in_app', 'pending', CAST(NULL AS text)),
            (2, 'push', CAST(:push_state AS text), CAST(:push_error AS text))
        ) AS c(n, channel, state, last_error)
        WHERE c.channel = 'in_app' OR :push
        ORDER BY a.n, c.n
        ON CONFLICT (dedup_key, channel) DO NOTHING
        RETURNING id, channel, state
    )
    SELECT id, channel FROM inserted WHERE state = 'pending'
    """
)

_CHANNELS = {channel.value: channel for channel in Channel}


def _write_postgres(
    conn: Connection,
    notifications: Sequence[Notification],
    *,
    now: datetime,
    backfill: bool,
    channels: tuple[Channel, ...],
) -> list[OutboxRef]:
    push_state, push_error = _push_state(backfill)
    rows = conn.execute(
        _WRITE_OUTBOX,
        {
            # Each notification as a JSON array of its fields (in field
            # order): pydantic-core's encoder writes tuples and UUIDs itself
            # and is several times faster than json.dumps for many items.
            "items": to_json(notifications).decode(),
            "backfill": backfill,
            "push": Channel.PUSH in channels,
            "push_state": push_state.value,
            "push_error": push_error,
            "now": now,
        },
    )
    # One fetchall: noticeably faster than row by row for many RETURNING rows.
    return [OutboxRef(row_id, _CHANNELS[channel]) for row_id, channel in rows.all()]
