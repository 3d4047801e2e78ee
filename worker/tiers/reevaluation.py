"""Set-based tier re-evaluation over the currently active award periods (SQL).

For each award period that is active today (stored flag on, today's local
date in [start, end]), one ``INSERT … SELECT … ON CONFLICT`` (the SELECT is
built in :mod:`worker.tiers.query`; on PostgreSQL it first fills a temporary
table with ``CREATE TABLE … AS``, which may run it in parallel: see
:func:`worker.db.sql.query_result`) computes, for every candidate mentor of
the organisation at once:

* the qualifying activity count inside the period (per tier: its
  ``activity_types``, empty = all), from the weekly rows of
  ``period_activity_counts`` and, for the partial weeks at the period's
  edges, the daily rows of ``daily_activity_counts``;
* whether the mentor has a run of ``min_streak`` consecutive ISO weeks with
  a qualifying activity inside the period (week bit masks);
* the highest tier whose *both* thresholds hold;

and upserts ``tier_assignments`` so that a row changes only when the new tier
is higher (the highest tier reached in a period is kept; a mentor whose stats
went down keeps the tier).  ``RETURNING`` yields exactly the promotions,
which get their outbox rows (``tier_promoted``) in the same transaction and
then the badges a promotion can unlock (definitions with a ``tier``
criterion), plain ``tier`` badges set-based by :mod:`worker.tiers.followup`.

The number of statements depends on the number of periods and tier badge
definitions, not of mentors: per period one candidate count, one upsert (on
PostgreSQL with its temporary table's create and drop), one run record, one
outbox insert (:func:`worker.notifications.outbox.write_outbox`), and per
plain ``tier`` badge one award insert and one outbox insert; composite
criteria with a ``tier`` part are evaluated for the promoted mentors in
batches (:data:`worker.core.models.BATCH_SIZE`).

Incremental rule: a period's run record stores when it last ran and a
fingerprint of its dates and tier thresholds.  Candidates are the mentors
whose ``stats_changed_at`` is newer than the last run (minus an overlap, see
``Settings.tier_reevaluation_overlap_s``), or every mentor of the organisation
when the period has never been evaluated (it just started) or its fingerprint
changed.  Two runs at once cannot double-assign or double-notify: the upsert
only promotes, and outbox rows are deduplicated by assignment id and level;
the periodic task also holds a job lock (``worker.db.engine.try_lock_job``).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta, tzinfo
from typing import Any, NamedTuple
from uuid import UUID

from sqlalchemy import Connection, func, literal, select, true

from schema.tables import tier_assignments, tier_evaluation_runs
from worker.badges.awards import EarnedBadge
from worker.badges.evaluation import evaluate_mentors
from worker.core.clock import Clock, as_utc, local_today
from worker.core.garbage import collection_paused
from worker.core.models import batches
from worker.core.settings import get_settings
from worker.db.sql import insert_for, new_uuid, query_result
from worker.model.tier_rules import config_fingerprint
from worker.model.tiers import Promotion, RecognitionTier, TierAwardPeriod, TierLevel
from worker.notifications.outbox import notify_awards, tier_promotions, write_outbox
from worker.notifications.types import OutboxRef
from worker.tiers.followup import (
    award_tier_badge,
    is_plain_tier,
    tier_definitions,
)
from worker.tiers.query import candidate_mentors, highest_tiers
from worker.tiers.store import active_periods, load_tiers

log = logging.getLogger(__name__)

#: Name of the periodic job's advisory lock (``worker.db.engine.try_lock_job``).
JOB_NAME = "reevaluate_tiers"
#: Tier level by stored value (an enum call per promotion costs more than a lookup).
_LEVELS = {level.value: level for level in TierLevel}


@dataclass
class PeriodRun:
    period: TierAwardPeriod
    full: bool
    mentors_evaluated: int
    promotions: list[Promotion]


@dataclass
class TierRun:
    """What one re-evaluation did; ``outbox`` is dispatched after commit."""

    periods: list[PeriodRun] = field(default_factory=list)
    awarded: list[EarnedBadge] = field(default_factory=list)
    outbox: list[OutboxRef] = field(default_factory=list)

    @property
    def promotions(self) -> list[Promotion]:
        return [p for run in self.periods for p in run.promotions]


@collection_paused()
def reevaluate_tiers(
    conn: Connection,
    *,
    clock: Clock,
    tz: tzinfo | None = None,
    organisation_id: UUID | None = None,
    full: bool = False,
    overlap: timedelta | None = None,
) -> TierRun:
    """Re-evaluate tiers in every currently active award period (see module docstring).

    Runs in the caller's transaction.  ``full`` re-evaluates every mentor even
    when the incremental rule would not; ``organisation_id`` limits the run.
    ``tz`` (today's date) and ``overlap`` default to the configured settings.
    The garbage collector is paused meanwhile (see :mod:`worker.core.garbage`):
    a run keeps a few objects per promotion and award, none of them garbage.
    """
    settings = get_settings()
    tz = settings.tz if tz is None else tz
    if overlap is None:
        overlap = timedelta(seconds=settings.tier_reevaluation_overlap_s)
    now = clock.now()
    today = local_today(clock, tz)
    periods = active_periods(conn, today, organisation_id)
    tiers = _tiers_by_org(conn, {p.organisation_id for p in periods})
    previous = _previous_runs(conn, [p.id for p in periods])
    result = TierRun()
    for period in periods:
        org_tiers = tiers.get(period.organisation_id, [])
        fingerprint = config_fingerprint(period, org_tiers)
        last = previous.get(period.id)
        is_full = full or last is None or last.fingerprint != fingerprint
        since = None if is_full or last is None else last.evaluated_at - overlap
        run = _evaluate_period(conn, period, org_tiers, since=since, now=now)
        _record_run(
            conn, run, fingerprint, now, previous_full=None if last is None else last.full_at
        )
        result.periods.append(run)
        log.info(
            "tier re-evaluation of period %s (%s): %s, %d mentor(s), %d promotion(s)",
            period.name,
            period.id,
            "full" if is_full else "incremental",
            run.mentors_evaluated,
            len(run.promotions),
        )
    for run in result.periods:
        _follow_up(conn, run, now=now, result=result)
    return result


def _follow_up(conn: Connection, run: PeriodRun, *, now: datetime, result: TierRun) -> None:
    """Notify this run's promotions in a period and award the badges they unlock.

    A promotion changes nothing but the mentor's tier, so only definitions
    with a ``tier`` criterion can newly hold.  Plain ``tier`` badges are
    awarded set-based; composite criteria with a ``tier`` part go through
    the general evaluation, for the promoted mentors only.
    """
    if not run.promotions:
        return
    period = run.period
    result.outbox += write_outbox(conn, tier_promotions(run.promotions), now=now)
    definitions = tier_definitions(conn, period.organisation_id)
    for definition in definitions:
        if is_plain_tier(definition):
            awarded, refs = award_tier_badge(conn, period, definition, now=now)
            result.awarded += awarded
            result.outbox += refs
    composite = {d.id for d in definitions if not is_plain_tier(d)}
    if not composite:
        return
    for batch in batches(run.promotions):
        evaluation = evaluate_mentors(
            conn,
            {p.peer_mentor_id: p.organisation_id for p in batch},
            now=now,
            only=composite,
        )
        result.awarded += evaluation.awarded
        result.outbox += notify_awards(conn, evaluation.awarded, now=now)


def _tiers_by_org(
    conn: Connection, organisation_ids: set[UUID]
) -> dict[UUID, list[RecognitionTier]]:
    result: dict[UUID, list[RecognitionTier]] = {}
    if organisation_ids:
        for tier in load_tiers(conn, organisation_ids):
            result.setdefault(tier.organisation_id, []).append(tier)
    return result


class _LastRun(NamedTuple):
    fingerprint: str
    evaluated_at: datetime
    full_at: datetime


def _previous_runs(conn: Connection, period_ids: Sequence[UUID]) -> dict[UUID, _LastRun]:
    if not period_ids:
        return {}
    rows = conn.execute(
        select(
            tier_evaluation_runs.c.award_period_id,
            tier_evaluation_runs.c.config_fingerprint,
            tier_evaluation_runs.c.evaluated_at,
            tier_evaluation_runs.c.full_evaluated_at,
        ).where(tier_evaluation_runs.c.award_period_id.in_(sorted(period_ids)))
    )
    return {
        r.award_period_id: _LastRun(
            r.config_fingerprint, as_utc(r.evaluated_at), as_utc(r.full_evaluated_at)
        )
        for r in rows
    }


def _evaluate_period(
    conn: Connection,
    period: TierAwardPeriod,
    tiers: Sequence[RecognitionTier],
    *,
    since: datetime | None,
    now: datetime,
) -> PeriodRun:
    candidates = candidate_mentors(period, since)
    evaluated = int(
        conn.execute(select(func.count()).select_from(candidates.subquery())).scalar_one()
    )
    run = PeriodRun(period=period, full=since is None, mentors_evaluated=evaluated, promotions=[])
    if not tiers or not evaluated:
        return run
    best = highest_tiers(conn, period, tiers, since=since)
    reached = select(best.c.peer_mentor_id, best.c.tier).where(best.c.tier > 0)
    with query_result(conn, "tier_reached", reached) as reached_rows:
        run.promotions = _promote(conn, period, reached_rows, now=now)
    return run


def _promote(
    conn: Connection, period: TierAwardPeriod, reached: Any, *, now: datetime
) -> list[Promotion]:
    """Upsert the tiers ``reached`` (peer_mentor_id, tier > 0); the promotions, by mentor id."""
    insert = insert_for(conn, tier_assignments).from_select(
        ["id", "peer_mentor_id", "organisation_id", "award_period_id", "tier", "assigned_at"],
        select(
            new_uuid(conn),
            reached.c.peer_mentor_id,
            literal(period.organisation_id, tier_assignments.c.organisation_id.type),
            literal(period.id, tier_assignments.c.award_period_id.type),
            reached.c.tier,
            literal(now, tier_assignments.c.assigned_at.type),
        )
        # The WHERE resolves SQLite's INSERT…SELECT…ON CONFLICT parsing ambiguity.
        .where(true())
        # A fixed row order: two overlapping runs take row locks in the same order.
        .order_by(reached.c.peer_mentor_id),
    )
    upsert = insert.on_conflict_do_update(
        index_elements=[tier_assignments.c.peer_mentor_id, tier_assignments.c.award_period_id],
        set_={"tier": insert.excluded.tier, "assigned_at": insert.excluded.assigned_at},
        where=tier_assignments.c.tier < insert.excluded.tier,
    ).returning(
        tier_assignments.c.id,
        tier_assignments.c.peer_mentor_id,
        tier_assignments.c.tier,
    )
    # In mentor id order, as UUIDs order, by their integers (not UUID.__lt__, in Python).
    rows = sorted(conn.execute(upsert).all(), key=lambda r: r.peer_mentor_id.int)
    # Every row written (inserted or promoted) has assigned_at = now.
    assigned_at = as_utc(now)
    org, period_id, name = period.organisation_id, period.id, period.name
    return [
        Promotion(row.id, row.peer_mentor_id, org, period_id, name, _LEVELS[row.tier], assigned_at)
        for row in rows
    ]


def _record_run(
    conn: Connection,
    run: PeriodRun,
    fingerprint: str,
    now: datetime,
    *,
    previous_full: datetime | None,
) -> None:
    values = {
        "award_period_id": run.period.id,
        "organisation_id": run.period.organisation_id,
        "config_fingerprint": fingerprint,
        "evaluated_at": now,
        "full_evaluated_at": now if run.full or previous_full is None else previous_full,
        "mentors_evaluated": run.mentors_evaluated,
        "promotions": len(run.promotions),
    }
    stmt = insert_for(conn, tier_evaluation_runs).values(values)
    conn.execute(
        stmt.on_conflict_do_update(
            index_elements=[tier_evaluation_runs.c.award_period_id],
            set_={k: stmt.excluded[k] for k in values if k != "award_period_id"},
        )
    )
