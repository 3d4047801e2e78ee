"""The API's own reads and writes (SQL): configuration listings, memberships, notifications.

Awarding, revocation and configuration writes are *not* here: the API calls
the worker's service functions for those.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

from sqlalchemy import Connection, and_, or_, select, update

from api.pagination import decode_cursor, encode_cursor
from api.schemas import AwardPeriodOut, BadgeDefinitionOut, NotificationOut, TierOut
from schema.tables import (
    award_periods,
    badge_definitions,
    mentors,
    notifications,
    recognition_tiers,
)
from worker.core.clock import Clock
from worker.model.tiers import TierAwardPeriod, TierLevel


def mentor_organisation(conn: Connection, mentor_id: UUID) -> UUID | None:
    """The organisation a mentor belongs to, if the worker has seen them."""
    org: UUID | None = conn.scalar(
        select(mentors.c.organisation_id).where(mentors.c.peer_mentor_id == mentor_id)
    )
    return org


def badge_definitions_of(conn: Connection, organisation_id: UUID) -> list[BadgeDefinitionOut]:
    rows = conn.execute(
        select(badge_definitions)
        .where(badge_definitions.c.organisation_id == organisation_id)
        .order_by(badge_definitions.c.code)
    )
    return [BadgeDefinitionOut.model_validate(r, from_attributes=True) for r in rows]


def tiers_of(conn: Connection, organisation_id: UUID) -> list[TierOut]:
    rows = conn.execute(
        select(recognition_tiers)
        .where(recognition_tiers.c.organisation_id == organisation_id)
        .order_by(recognition_tiers.c.level)
    )
    fields = TierOut.model_fields.keys() - {"level"}
    return [
        TierOut.model_validate(
            {**{f: r._mapping[f] for f in fields}, "level": TierLevel(r.level).label}
        )
        for r in rows
    ]


def award_periods_of(
    conn: Connection, organisation_id: UUID, *, clock: Clock, tz: Any
) -> list[AwardPeriodOut]:
    rows = conn.execute(
        select(award_periods)
        .where(award_periods.c.organisation_id == organisation_id)
        .order_by(award_periods.c.start_date, award_periods.c.name)
    )
    out = []
    for r in rows:
        period = TierAwardPeriod.model_validate(r, from_attributes=True)
        out.append(
            AwardPeriodOut(
                **period.model_dump(), is_currently_active=period.is_currently_active(clock, tz)
            )
        )
    return out


def _notification(row: Any) -> NotificationOut:
    return NotificationOut.model_validate(row._mapping)


_NOTIFICATION_COLUMNS = (
    notifications.c.id,
    notifications.c.peer_mentor_id,
    notifications.c.organisation_id,
    notifications.c.kind,
    notifications.c.payload,
    notifications.c.created_at,
    notifications.c.read_at,
)


def list_notifications(
    conn: Connection,
    *,
    organisation_id: UUID,
    mentor_id: UUID | None,
    unread: bool | None,
    limit: int,
    cursor: str | None,
) -> tuple[list[NotificationOut], str | None]:
    """One page, newest first (keyset on ``(created_at, id)`` descending)."""
    query = select(*_NOTIFICATION_COLUMNS).where(notifications.c.organisation_id == organisation_id)
    if mentor_id is not None:
        query = query.where(notifications.c.peer_mentor_id == mentor_id)
    if unread is True:
        query = query.where(notifications.c.read_at.is_(None))
    elif unread is False:
        query = query.where(notifications.c.read_at.is_not(None))
    if cursor is not None:
        before_at, before_id = decode_cursor(cursor)
        query = query.where(
            or_(
                notifications.c.created_at < before_at,
                and_(notifications.c.created_at == before_at, notifications.c.id < before_id),
            )
        )
    rows = conn.execute(
        query.order_by(notifications.c.created_at.desc(), notifications.c.id.desc()).limit(
            limit + 1
        )
    )
    items = [_notification(r) for r in rows]
    next_cursor = None
    if len(items) > limit:
        last = items[limit - 1]
        next_cursor = encode_cursor(last.created_at, last.id)
    return items[:limit], next_cursor


def get_notification(conn: Connection, notification_id: UUID) -> NotificationOut | None:
    row = conn.execute(
        select(*_NOTIFICATION_COLUMNS).where(notifications.c.id == notification_id)
    ).first()
    return _notification(row) if row else None


def mark_read(conn: Connection, notification_id: UUID, *, now: datetime) -> NotificationOut:
    """Set ``read_at`` once; reading again keeps the first time (idempotent)."""
    conn.execute(
        update(notifications)
        .where(notifications.c.id == notification_id, notifications.c.read_at.is_(None))
        .values(read_at=now)
    )
    found = get_notification(conn, notification_id)
    assert found is not None
    return found
