"""``badges.ingest_activity``: one activity event in, stats/awards/outbox out."""

from __future__ import annotations

import logging
from typing import Any

from celery import Task

from worker.app import app
from worker.clock import SystemClock
from worker.db import unit_of_work
from worker.ingest import IncomingEvent, IngestResult, ingest_events
from worker.quarantine import quarantine
from worker.settings import get_settings
from worker.tasks.common import TRANSIENT_ERRORS, dispatch_outbox

log = logging.getLogger(__name__)

BAD_SHAPE = "message must carry exactly one keyword argument 'event' and no positional arguments"


@app.task(
    bind=True,
    name="badges.ingest_activity",
    autoretry_for=TRANSIENT_ERRORS,
    retry_backoff=True,
    retry_backoff_max=get_settings().max_retry_delay_s,
    retry_jitter=True,
    # An outage is retried for as long as it lasts (each delay capped well below
    # the broker's visibility timeout); giving up would drop the event.
    max_retries=None,
)
def ingest_activity(self: Task, *args: Any, **kwargs: Any) -> dict[str, int]:
    """Apply one activity event (DESIGN §3).

    Bad input is quarantined and acknowledged; database or broker outages
    raise and are retried with backoff.  Any other failure is a defect: the
    event is quarantined with the error as its reason (kept for replay, never
    silently dropped) and the message acknowledged.
    """
    if args or set(kwargs) != {"event"}:
        incoming = IncomingEvent({"args": list(args), "kwargs": kwargs}, self.request.id)
        result = _quarantine([incoming], BAD_SHAPE)
    else:
        incoming = IncomingEvent(kwargs["event"], self.request.id)
        try:
            result = _ingest([incoming])
        except TRANSIENT_ERRORS:
            raise
        except Exception as exc:
            log.exception("ingesting event failed; quarantining it (task %s)", self.request.id)
            result = _quarantine([incoming], f"processing failed: {type(exc).__name__}: {exc}")
    dispatch_outbox(result.outbox)
    return {
        "applied": result.applied,
        "duplicates": result.duplicates,
        "quarantined": result.quarantined,
        "awarded": len(result.awarded),
    }


def _ingest(incoming: list[IncomingEvent]) -> IngestResult:
    with unit_of_work() as conn:
        return ingest_events(conn, incoming, clock=SystemClock())


def _quarantine(incoming: list[IncomingEvent], reason: str) -> IngestResult:
    with unit_of_work() as conn:
        count = quarantine(
            conn, [(i.payload, i.task_id, reason[:2000]) for i in incoming], now=SystemClock().now()
        )
    return IngestResult(received=len(incoming), quarantined=count)
