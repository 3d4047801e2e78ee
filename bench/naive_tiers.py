"""A naive tier re-evaluation, for comparison only: one mentor at a time.

Per mentor: one query for its daily counts inside the period, the count and
the longest weekly streak per tier computed in Python (with the project's own
``worker.streaks.longest_streak``), and one upsert that only promotes.  It
does less than the real code (no notifications, no badge evaluation of the
promoted), so the speedup measured against it is a lower bound.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from uuid import UUID

from sqlalchemy import Connection, text

from worker.streaks import Period, longest_streak
from worker.tiers import RecognitionTier, TierAwardPeriod

_DAILY = text(
    "SELECT activity_date, activity_type, activity_count FROM daily_activity_counts "
    "WHERE peer_mentor_id = :mentor AND organisation_id = :org "
    "AND activity_date BETWEEN :start AND :end AND activity_count > 0"
)
_UPSERT = text(
    "INSERT INTO tier_assignments "
    "(id, peer_mentor_id, organisation_id, award_period_id, tier, assigned_at) "
    "VALUES (gen_random_uuid(), :mentor, :org, :period, :tier, :now) "
    "ON CONFLICT (peer_mentor_id, award_period_id) DO UPDATE "
    "SET tier = excluded.tier, assigned_at = excluded.assigned_at "
    "WHERE tier_assignments.tier < excluded.tier RETURNING id"
)


def candidate_mentors(conn: Connection, organisation_id: UUID) -> list[UUID]:
    """Every mentor of the organisation."""
    return list(
        conn.execute(
            text("SELECT peer_mentor_id FROM mentors WHERE organisation_id = :org"),
            {"org": organisation_id},
        ).scalars()
    )


def evaluate_mentor(
    conn: Connection,
    mentor: UUID,
    period: TierAwardPeriod,
    tiers: Sequence[RecognitionTier],
    *,
    now: datetime,
) -> bool:
    """Assign one mentor's highest tier in ``period``; True if it was a promotion."""
    rows = conn.execute(
        _DAILY,
        {
            "mentor": mentor,
            "org": period.organisation_id,
            "start": period.start_date,
            "end": period.end_date,
        },
    ).all()
    best = 0
    for tier in tiers:
        types = set(tier.activity_types)
        qualifying = [r for r in rows if not types or r.activity_type in types]
        total = sum(r.activity_count for r in qualifying)
        streak = longest_streak((r.activity_date for r in qualifying), Period.WEEK)
        if total >= tier.min_assignments and streak >= tier.min_streak:
            best = max(best, int(tier.level))
    if best == 0:
        return False
    promoted = conn.execute(
        _UPSERT,
        {
            "mentor": mentor,
            "org": period.organisation_id,
            "period": period.id,
            "tier": best,
            "now": now,
        },
    ).first()
    return promoted is not None
