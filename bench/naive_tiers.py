"""A naive tier re-evaluation, for comparison only: one mentor at a time.

Per mentor it does the job the real run does, through the project's own
per-mentor functions:

* one query for its daily counts inside the period, the count and the
  longest weekly streak per tier computed in Python (the project's
  ``worker.model.streaks.longest_streak``), and one upsert that only promotes;
* for a promotion: its ``tier_promoted`` outbox rows
  (``worker.notifications.outbox.write_outbox`` of
  ``worker.notifications.outbox.tier_promotions``), the evaluation of the
  definitions a promotion can newly satisfy (``worker.badges.evaluation.
  evaluate_mentors``, the tier definitions only, as the real run) and the
  ``badge_earned`` outbox rows of its awards
  (``worker.notifications.outbox.notify_awards``).

:func:`evaluate_mentor` returns the time spent in the first part separately,
so the tier computation alone can be compared too.
"""

from __future__ import annotations

import time
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

from sqlalchemy import Connection, text

from worker.badges.evaluation import evaluate_mentors
from worker.model.streaks import Period, longest_streak
from worker.model.tiers import Promotion, RecognitionTier, TierAwardPeriod, TierLevel
from worker.notifications.outbox import notify_awards, tier_promotions, write_outbox

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
    "WHERE tier_assignments.tier < excluded.tier RETURNING id, assigned_at"
)


@dataclass
class MentorOutcome:
    promoted: bool
    awards: int
    outbox_rows: int
    #: seconds spent on the tier itself (read, compute, upsert)
    tier_seconds: float


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
    tier_definitions: Collection[UUID],
) -> MentorOutcome:
    """Assign one mentor's highest tier in ``period``, then notify and award as the real run."""
    started = time.perf_counter()
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
    promoted = None
    if best:
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
    tier_seconds = time.perf_counter() - started
    if promoted is None:
        return MentorOutcome(False, 0, 0, tier_seconds)
    promotion = Promotion(
        assignment_id=promoted.id,
        peer_mentor_id=mentor,
        organisation_id=period.organisation_id,
        award_period_id=period.id,
        award_period_name=period.name,
        tier=TierLevel(best),
        assigned_at=promoted.assigned_at,
    )
    refs = write_outbox(conn, tier_promotions([promotion]), now=now)
    awards = []
    if tier_definitions:
        awards = evaluate_mentors(
            conn, {mentor: period.organisation_id}, now=now, only=tier_definitions
        ).awarded
        refs += notify_awards(conn, awards, now=now)
    return MentorOutcome(True, len(awards), len(refs), tier_seconds)
