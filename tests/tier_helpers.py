"""Builders for tier, award-period and activity fixtures (tier/summary/reconcile tests)."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import Connection, func, select

from schema.tables import notification_outbox, tier_assignments
from tests.helpers import saved_event
from worker.core.clock import FixedClock
from worker.ingestion.ingest import IncomingEvent, IngestResult, ingest_events

MONDAY = date(2026, 1, 5)


def tier(
    org: uuid.UUID, level: str, min_assignments: int, min_streak: int, *types: str
) -> dict[str, Any]:
    return {
        "organisation_id": str(org),
        "level": level,
        "min_assignments": min_assignments,
        "min_streak": min_streak,
        "activity_types": list(types),
    }


def award_period(
    org: uuid.UUID,
    name: str = "2026",
    start: date = date(2026, 1, 1),
    end: date = date(2026, 12, 31),
    *,
    active: bool = True,
) -> dict[str, Any]:
    return {
        "organisation_id": str(org),
        "name": name,
        "start_date": start.isoformat(),
        "end_date": end.isoformat(),
        "is_active": active,
    }


def activity_events(
    org: uuid.UUID,
    mentor: uuid.UUID,
    *,
    count: int,
    streak: int,
    start: date = MONDAY,
    activity_type: str = "peer_session",
) -> list[dict[str, Any]]:
    """``count`` activities whose longest weekly streak is exactly ``streak``.

    One activity in each of ``streak`` consecutive weeks from ``start``; the
    rest land in the first week.
    """
    if count < streak or (streak == 0 and count > 0):
        raise ValueError("cannot build that combination")
    days = [start + timedelta(weeks=i) for i in range(streak)]
    days += [start] * (count - streak)
    return [saved_event(org=org, mentor=mentor, day=d, activity_type=activity_type) for d in days]


def ingest(conn: Connection, events: Sequence[dict[str, Any]], at: datetime) -> IngestResult:
    return ingest_events(conn, [IncomingEvent(e) for e in events], clock=FixedClock(at))


def assigned_tiers(conn: Connection, period_id: uuid.UUID) -> dict[uuid.UUID, int]:
    rows = conn.execute(
        select(tier_assignments.c.peer_mentor_id, tier_assignments.c.tier).where(
            tier_assignments.c.award_period_id == period_id
        )
    )
    return {r.peer_mentor_id: r.tier for r in rows}


def promotion_keys(
    conn: Connection, mentor: uuid.UUID | None = None, *, org: uuid.UUID | None = None
) -> dict[str, int]:
    """tier_promoted dedup key -> number of outbox rows (one per channel)."""
    query = (
        select(notification_outbox.c.dedup_key, func.count())
        .where(notification_outbox.c.kind == "tier_promoted")
        .group_by(notification_outbox.c.dedup_key)
    )
    if mentor is not None:
        query = query.where(notification_outbox.c.peer_mentor_id == mentor)
    if org is not None:
        query = query.where(notification_outbox.c.organisation_id == org)
    return {key: n for key, n in conn.execute(query)}


def period_id(org: uuid.UUID, name: str = "2026") -> uuid.UUID:
    """The id ``badges definitions apply`` derives for an award period."""
    from worker.configuration.schema import ID_NAMESPACE

    return uuid.uuid5(ID_NAMESPACE, f"period:{org}:{name}")
