"""The outbox payload builders: each notification as the docs spell it."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from worker.model.tiers import Promotion, TierLevel
from worker.notifications.outbox import tier_promotions
from worker.notifications.types import TIER_PROMOTED

ORG = uuid.UUID("0b6f9c1e-7a3d-4e2f-9c8b-1d2e3f4a5b6c")
RUN = datetime(2026, 6, 1, 3, 0, tzinfo=UTC)


def _promotion(period: uuid.UUID, name: str, tier: TierLevel, at: datetime) -> Promotion:
    return Promotion(uuid.uuid4(), uuid.uuid4(), ORG, period, name, tier, at)


def test_each_promotion_gets_its_own_period_clock_and_level() -> None:
    spring, autumn = uuid.uuid4(), uuid.uuid4()
    later = RUN + timedelta(hours=1)
    promotions = [
        _promotion(spring, "Spring", TierLevel.GOLD, RUN),
        _promotion(autumn, "Autumn", TierLevel.BRONZE, RUN),
        _promotion(spring, "Spring", TierLevel.PLATINUM, later),
        _promotion(spring, "Spring", TierLevel.SILVER, RUN),
    ]
    notifications = tier_promotions(promotions)
    assert [n.peer_mentor_id for n in notifications] == [p.peer_mentor_id for p in promotions]
    for n, p in zip(notifications, promotions, strict=True):
        assert n.kind == TIER_PROMOTED
        assert n.dedup_key == f"tier_promoted:{p.assignment_id}:{int(p.tier)}"
        assert n.organisation_id == ORG
        assert n.payload == {
            "tier": p.tier.name.lower(),
            "tier_level": int(p.tier),
            "award_period_id": str(p.award_period_id),
            "award_period_name": p.award_period_name,
            "assigned_at": p.assigned_at.isoformat(),
        }
    assert notifications[2].payload["assigned_at"] == "2026-06-01T04:00:00+00:00"
    assert notifications[1].payload["award_period_id"] == str(autumn)


def test_no_promotions_no_notifications() -> None:
    assert tier_promotions([]) == []
