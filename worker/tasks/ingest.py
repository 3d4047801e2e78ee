"""``badges.ingest_activity``: activity events in, stats/awards/outbox out.

The message contract is one event per message; the worker buffers
messages into batches (:mod:`worker.tasks.batching`) and processes each in
at most two units of work (:func:`worker.ingestion.batch.ingest_batch`: the
mentors whose locks are free at once, then the few another worker held).  Each event is parsed into its frozen model
in the consumer as it arrives (:meth:`IngestTask.prepare`), so only validated,
bounded data crosses into the pool.  Error policy, per batch:

* bad input (contract breaks, unknown organisation, wrong message shape) is
  quarantined inside the batch's transaction; its batch-mates are unaffected;
* an outage (database or broker unreachable) is retried in place with
  exponential backoff; if it outlasts ``max_retry_delay_s`` the messages are
  re-published with a countdown, so nothing waits near the visibility timeout
  and nothing is dropped;
* any other exception is a defect: the batch is split and each event retried
  alone, and an event that still fails is quarantined with the error as its
  reason (kept for replay, never silently acknowledged as lost).
"""

from __future__ import annotations

import logging
import random
import time
from dataclasses import dataclass, replace
from typing import Any

from worker.app import app
from worker.core.clock import SystemClock
from worker.core.settings import get_settings
from worker.db.unit_of_work import unit_of_work
from worker.ingestion.batch import ingest_batch
from worker.ingestion.ingest import IncomingEvent, IngestResult
from worker.ingestion.quarantine import quarantine
from worker.model.events import QUEUE, TASK_NAME, InvalidEvent, parse_event
from worker.observability.context import bound
from worker.tasks.batching import BatchItem, BatchTask
from worker.tasks.common import TRANSIENT_ERRORS
from worker.tasks.observability import event_id_of, ingest_log_fields, record_ingest

log = logging.getLogger(__name__)

BAD_SHAPE = "message must carry exactly one keyword argument 'event' and no positional arguments"
_settings = get_settings()


class IngestTask(BatchTask):
    name = TASK_NAME
    acks_late = True
    flush_every = _settings.ingest_batch_size
    flush_interval = _settings.ingest_flush_interval_s
    requeue_on = TRANSIENT_ERRORS

    def prepare(self, item: BatchItem) -> BatchItem:
        """In the consumer: check the message's shape and parse its event (or reject it)."""
        if item.args or set(item.kwargs) != {"event"}:
            return item.rejected(BAD_SHAPE, {"args": list(item.args), "kwargs": item.kwargs})
        try:
            event = parse_event(item.kwargs["event"])
        except InvalidEvent as exc:
            return item.rejected(exc.reason[:2000], item.kwargs["event"])
        return replace(item, kwargs={"event": event.model_dump(mode="json")})

    def run(self, *args: Any, **kwargs: Any) -> dict[str, int]:
        """One message on its own (a batch of one): direct calls and tests."""
        return self.run_batch([BatchItem(self.request.id or "direct", args, kwargs, 0)])

    def run_batch(self, items: list[BatchItem]) -> dict[str, int]:
        """Apply a batch of messages in one unit of work (see the module docstring)."""
        log.info("processing batch of %d", len(items))
        started = time.perf_counter()
        result = IngestResult()
        refused = [i for i in items if i.reason is not None]
        if refused:
            result.merge(_quarantine_items([(i.raw, i.task_id, i.reason or "") for i in refused]))
        items = [i for i in items if i.reason is None]
        wrong_shape = [i for i in items if i.args or set(i.kwargs) != {"event"}]
        if wrong_shape:
            result.merge(
                _quarantine(
                    [
                        IncomingEvent({"args": list(i.args), "kwargs": i.kwargs}, i.task_id)
                        for i in wrong_shape
                    ],
                    BAD_SHAPE,
                )
            )
        good = [i for i in items if i not in wrong_shape]
        if good:
            incoming = [IncomingEvent(i.kwargs["event"], i.task_id) for i in good]
            retry = _Retry(
                retries=max(i.retries for i in good),
                queue=next((i.queue for i in good if i.queue), QUEUE),
            )
            result.merge(_ingest_with_policy(incoming, retry=retry))
        record_ingest(result, items, seconds=time.perf_counter() - started)
        log.info(
            "ingested batch of %d: applied %d, duplicates %d, stale %d, quarantined %d, awarded %d",
            len(items) + len(refused),
            result.applied,
            result.duplicates,
            result.stale,
            result.quarantined,
            len(result.awarded),
        )
        return {
            "received": len(items) + len(refused),
            "applied": result.applied,
            "duplicates": result.duplicates,
            "quarantined": result.quarantined,
            "awarded": len(result.awarded),
        }

    def log_fields(self, items: list[BatchItem]) -> dict[str, Any]:
        return ingest_log_fields(items)


ingest_activity = app.register_task(IngestTask())


def _ingest(incoming: list[IncomingEvent]) -> IngestResult:
    return ingest_batch(None, incoming, clock=SystemClock())


def _quarantine(incoming: list[IncomingEvent], reason: str) -> IngestResult:
    return _quarantine_items([(i.payload, i.task_id, reason[:2000]) for i in incoming])


def _quarantine_items(items: list[tuple[Any, str | None, str]]) -> IngestResult:
    with unit_of_work() as conn:
        count = quarantine(conn, items, now=SystemClock().now())
    return IngestResult(received=len(items), quarantined=count)


@dataclass(frozen=True)
class _Retry:
    retries: int  # how often these messages were re-published already
    queue: str  # where re-published messages go: the queue they came from


def _ingest_with_policy(incoming: list[IncomingEvent], *, retry: _Retry) -> IngestResult:
    try:
        return _ingest_through_outage(incoming, retry=retry)
    except _Republished:
        return IngestResult(received=len(incoming))
    except TRANSIENT_ERRORS:
        raise
    except Exception as exc:
        if len(incoming) > 1:
            log.exception("batch of %d failed; processing its events one by one", len(incoming))
            result = IngestResult()
            for one in incoming:
                with bound(task_id=one.task_id, event_id=event_id_of(one.payload)):
                    result.merge(_ingest_with_policy([one], retry=retry))
            return result
        log.exception("ingesting event failed; quarantining it (task %s)", incoming[0].task_id)
        return _quarantine(incoming, f"processing failed: {type(exc).__name__}: {exc}")


class _Republished(Exception):
    """The batch outlasted the in-place retries and was handed back to the broker."""


def _ingest_through_outage(incoming: list[IncomingEvent], *, retry: _Retry) -> IngestResult:
    settings = get_settings()
    budget = settings.max_retry_delay_s
    started = time.monotonic()
    attempt = 0
    while True:
        try:
            return _ingest(incoming)
        except TRANSIENT_ERRORS as exc:
            attempt += 1
            delay = min(2.0 ** (attempt - 1), 60.0) * (0.5 + random.random() / 2)
            if time.monotonic() - started + delay > budget:
                log.error("outage outlasted %ss; re-publishing %d event(s)", budget, len(incoming))
                _republish(incoming, countdown=budget, retry=retry)
                raise _Republished() from exc
            reason = str(exc).strip().splitlines()[0][:300] if str(exc).strip() else ""
            log.warning(
                "outage (%s: %s); retry %d in %.1fs", type(exc).__name__, reason, attempt, delay
            )
            time.sleep(delay)


def _republish(incoming: list[IncomingEvent], *, countdown: float, retry: _Retry) -> None:
    """Send the events again with a countdown (a broker failure here raises: nothing is acked)."""
    with app.producer_or_acquire() as producer:
        for item in incoming:
            app.send_task(
                TASK_NAME,
                kwargs={"event": item.payload},
                queue=retry.queue,
                countdown=countdown,
                retries=retry.retries + 1,
                producer=producer,
            )
