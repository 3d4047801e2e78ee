"""Reading tier configuration (SQL): recognition tiers and award periods as domain models."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date
from typing import Any
from uuid import UUID

from sqlalchemy import Connection, select

from schema.tables import award_periods, recognition_tiers
from worker.model.tiers import RecognitionTier, TierAwardPeriod


def active_periods(
    conn: Connection, today: date, organisation_id: UUID | None = None
) -> list[TierAwardPeriod]:
    """Award periods with the flag on and ``today`` in [start, end] (inclusive)."""
    query = (
        select(award_periods)
        .where(
            award_periods.c.is_active.is_(True),
            award_periods.c.start_date <= today,
            award_periods.c.end_date >= today,
        )
        .order_by(award_periods.c.organisation_id, award_periods.c.start_date, award_periods.c.id)
    )
    if organisation_id is not None:
        query = query.where(award_periods.c.organisation_id == organisation_id)
    return [period_from_row(row) for row in conn.execute(query)]


def period_from_row(row: Any) -> TierAwardPeriod:
    return TierAwardPeriod.model_validate(row, from_attributes=True)


def tier_from_row(row: Any) -> RecognitionTier:
    fields = {name: getattr(row, name) for name in RecognitionTier.model_fields}
    return RecognitionTier.model_validate({**fields, "activity_types": row.activity_types or ()})


def load_tiers(conn: Connection, organisation_ids: Iterable[UUID]) -> list[RecognitionTier]:
    rows = conn.execute(
        select(recognition_tiers)
        .where(recognition_tiers.c.organisation_id.in_(sorted(set(organisation_ids))))
        .order_by(recognition_tiers.c.organisation_id, recognition_tiers.c.level)
    )
    return [tier_from_row(row) for row in rows]


def organisation_periods(conn: Connection, organisation_id: UUID) -> list[TierAwardPeriod]:
    """Every award period of the organisation, whatever its flag and dates."""
    rows = conn.execute(
        select(award_periods)
        .where(award_periods.c.organisation_id == organisation_id)
        .order_by(award_periods.c.start_date, award_periods.c.id)
    )
    return [period_from_row(row) for row in rows]
