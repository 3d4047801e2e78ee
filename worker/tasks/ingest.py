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
    max_retries=20,
)
def ingest_activity(self: Task, *args: Any, **kwargs: Any) -> dict[str, int]:
    """Apply one activity event (DESIGN §3).

    Bad input is quarantined and acknowledged; database or broker outages
    raise and are retried with backoff.
    """
    if args or set(kwargs) != {"event"}:
        payload: Any = {"args": list(args), "kwargs": kwargs}
        incoming = IncomingEvent(payload, self.request.id)
        result = _run([incoming], bad_shape=True)
    else:
        result = _run([IncomingEvent(kwargs["event"], self.request.id)])
    dispatch_outbox(result.outbox)
    return {
        "applied": result.applied,
        "duplicates": result.duplicates,
        "quarantined": result.quarantined,
        "awarded": len(result.awarded),
    }


def _run(incoming: list[IncomingEvent], *, bad_shape: bool = False) -> IngestResult:
    clock = SystemClock()
    with unit_of_work() as conn:
        if bad_shape:
            count = quarantine(
                conn, [(i.payload, i.task_id, BAD_SHAPE) for i in incoming], now=clock.now()
            )
            return IngestResult(received=len(incoming), quarantined=count)
        return ingest_events(conn, incoming, clock=clock)
