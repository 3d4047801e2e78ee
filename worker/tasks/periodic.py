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

from pydantic import BaseModel, ConfigDict, ValidationError

from worker.app import app
from worker.core.clock import SystemClock
from worker.core.settings import get_settings
from worker.db.engine import get_engine, try_lock_job, unit_of_work
from worker.ingestion.reconcile import run_reconcile
from worker.observability.metrics import record_awards
from worker.tasks.common import dispatch_outbox
from worker.tasks.observability import job_succeeded
from worker.tiers.reevaluation import JOB_NAME, TierRun, reevaluate_tiers

log = logging.getLogger(__name__)


class ReevaluateTiersMessage(BaseModel):
    """Optional keyword arguments of ``badges.reevaluate_tiers`` (beat sends none)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    organisation_id: UUID | None = None
    full: bool = False


class ReconcileMessage(BaseModel):
    """Optional keyword arguments of ``badges.reconcile`` (beat sends none)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    repair: bool = True


def run_tier_reevaluation(
    *, organisation_id: UUID | None = None, full: bool = False
) -> TierRun | None:
    """One locked re-evaluation in its own unit of work; None if another run holds the lock.

    Shared by the task and ``badges tiers evaluate``; outbox rows are
    dispatched after the commit.
    """
    settings = get_settings()
    with unit_of_work() as conn:
        if not try_lock_job(conn, JOB_NAME):
            log.info("tier re-evaluation: another run holds the lock; skipped")
            return None
        result = reevaluate_tiers(
            conn,
            clock=SystemClock(),
            tz=settings.tz,
            organisation_id=organisation_id,
            full=full,
        )
    dispatch_outbox(result.outbox)
    return result


@app.task(name="badges.reevaluate_tiers")
def reevaluate_tiers_task(*args: Any, **kwargs: Any) -> dict[str, Any]:
    """Re-evaluate tiers in every currently active award period (incremental)."""
    started = time.monotonic()
    try:
        if args:
            raise ValueError("no positional arguments allowed")
        message = ReevaluateTiersMessage.model_validate(kwargs)
    except (ValueError, ValidationError) as exc:
        log.error("badges.reevaluate_tiers: invalid message %r: %s", kwargs or args, exc)
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
    try:
        if args:
            raise ValueError("no positional arguments allowed")
        message = ReconcileMessage.model_validate(kwargs)
    except (ValueError, ValidationError) as exc:
        log.error("badges.reconcile: invalid message %r: %s", kwargs or args, exc)
        return {"invalid": True}
    report = run_reconcile(get_engine(), clock=SystemClock(), repair=message.repair)
    if report.skipped:
        return {"skipped": True}
    dispatch_outbox(report.outbox)
    record_awards("evaluation", len(report.awarded))
    job_succeeded("reconcile", started=started)
    if report.total:
        log.warning("reconcile: repaired %d drifted row(s): %s", report.total, report.drifted)
    return {"drifted": report.total, "by_table": report.drifted}
