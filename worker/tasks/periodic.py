"""Periodic tasks from celery beat: ``badges.reevaluate_tiers`` and ``badges.reconcile``.

Both run on queue ``maintenance`` (celeryconfig routes them).  Two beat
processes started by mistake, or a run overlapping a slow previous one, must
not double-assign or double-notify: each run holds a PostgreSQL advisory lock
for its whole transaction (``try_lock_job``) and skips when another run holds
it, and every write is idempotent anyway (promotion-only upserts, outbox rows
deduplicated by key).  Neither task retries: the next beat tick is the retry.
Outbox rows are dispatched after commit.
"""

from __future__ import annotations

import logging
import time
from typing import Any
from uuid import UUID

from worker.app import app
from worker.core.clock import SystemClock
from worker.core.models import FrozenModel
from worker.core.settings import get_settings
from worker.db.engine import get_engine
from worker.ingestion.reconcile import run_reconcile
from worker.observability.metrics import record_awards
from worker.tasks.common import locked_job, parse_message
from worker.tasks.observability import job_succeeded
from worker.tiers.reevaluation import JOB_NAME, TierRun, reevaluate_tiers

log = logging.getLogger(__name__)


class ReevaluateTiersMessage(FrozenModel):
    """Optional keyword arguments of ``badges.reevaluate_tiers`` (beat sends none)."""

    organisation_id: UUID | None = None
    full: bool = False


class ReconcileMessage(FrozenModel):
    """Optional keyword arguments of ``badges.reconcile`` (beat sends none)."""

    repair: bool = True


def run_tier_reevaluation(
    *, organisation_id: UUID | None = None, full: bool = False
) -> TierRun | None:
    """One locked re-evaluation in its own unit of work; None if another run holds the lock.

    Shared by the task and ``badges tiers evaluate``; outbox rows are
    dispatched after the commit.
    """
    settings = get_settings()
    with locked_job(JOB_NAME) as conn:
        if conn is None:
            return None
        result = reevaluate_tiers(
            conn,
            clock=SystemClock(),
            tz=settings.tz,
            organisation_id=organisation_id,
            full=full,
        )
    return result


@app.task(name="badges.reevaluate_tiers")
def reevaluate_tiers_task(*args: Any, **kwargs: Any) -> dict[str, Any]:
    """Re-evaluate tiers in every currently active award period (incremental)."""
    started = time.monotonic()
    message = parse_message("badges.reevaluate_tiers", ReevaluateTiersMessage, args, kwargs)
    if message is None:
        return {"invalid": True}
    result = run_tier_reevaluation(organisation_id=message.organisation_id, full=message.full)
    if result is None:
        return {"skipped": True}
    record_awards("evaluation", len(result.awarded))
    job_succeeded("reevaluate_tiers", started=started)
    return {
        "periods": len(result.periods),
        "mentors_evaluated": sum(p.mentors_evaluated for p in result.periods),
        "promotions": len(result.promotions),
        "badges_awarded": len(result.awarded),
    }


@app.task(name="badges.reconcile")
def reconcile_task(*args: Any, **kwargs: Any) -> dict[str, Any]:
    """Recompute stats from the ledger, repair drift, report the drifted row count."""
    started = time.monotonic()
    message = parse_message("badges.reconcile", ReconcileMessage, args, kwargs)
    if message is None:
        return {"invalid": True}
    report = run_reconcile(get_engine(), clock=SystemClock(), repair=message.repair)
    if report.skipped:
        return {"skipped": True}
    record_awards("evaluation", len(report.awarded))
    job_succeeded("reconcile", started=started)
    if report.total:
        log.warning("reconcile: repaired %d drifted row(s): %s", report.total, report.drifted)
    return {"drifted": report.total, "by_table": report.drifted}
