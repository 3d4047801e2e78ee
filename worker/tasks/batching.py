"""Batched consumption on Celery's own machinery: one message per event, one unit of work per batch.

A :class:`BatchTask` replaces Celery's execution *strategy* (the function the
consumer calls for each received message) with one that buffers requests and
flushes them to the pool as a list: when ``flush_every`` are buffered, or
``flush_interval`` seconds after the first one arrived, so a lone message is
still handled promptly.  The approach follows the celery-batches package,
which is not used directly because its releases pin Celery below 5.7.

Acknowledgement: every message of a batch is acknowledged only after the
batch function returned (its transaction committed).  If the pool process
executing a batch dies, the messages are rejected with requeue, so they are
delivered again (and their effects are idempotent).  Messages with an ETA
(re-scheduled retries) wait in the worker's timer until due.

For the prefork pool the worker's prefetch limit must exceed ``flush_every``,
or a batch could never fill: ``celeryconfig`` sets the prefetch multiplier
from the batch size.

Poison messages never take their batch-mates down:

* each message is decoded and passed through :meth:`BatchTask.prepare` in
  the consumer as it arrives, so what crosses into the pool is bounded and
  plain; a body that cannot be decoded (broken JSON, invalid UTF-8, a
  refused content type such as pickle) becomes a *rejected* item carrying
  its raw body (bounded) and the reason, instead of Celery's drop-and-log;
* if handing a batch to the pool fails (pickling, say) or the batch raises,
  it is split in halves down to the message that causes it, which is
  rejected with the error as its reason; every other message is processed;
* only a lost pool process or an error in :attr:`BatchTask.requeue_on`
  (outages) hands the messages back to the broker.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from billiard.exceptions import WorkerLostError
from celery import Task
from celery.utils.imports import symbol_by_name
from celery.worker import state as worker_state
from celery.worker.request import create_request_cls
from celery.worker.strategy import hybrid_to_proto2, proto1_to_proto2

from worker.ingestion.quarantine import bounded_raw
from worker.observability.context import bound
from worker.tasks.batch_events import (
    run_with_signals,
    send_failed,
    send_received,
    send_started,
    send_succeeded,
)

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class BatchItem:
    """What a pool process needs of one message: picklable, no connection objects."""

    task_id: str
    args: tuple[Any, ...]
    kwargs: dict[str, Any]
    retries: int
    queue: str | None = None  # the queue it came from (retries go back there)
    #: Set for a message refused before it reached the task: why, and the raw
    #: body (bounded), for the task to quarantine; ``args``/``kwargs`` are empty.
    reason: str | None = None
    raw: str | None = None

    def rejected(self, reason: str, raw: Any) -> BatchItem:
        text, note = bounded_raw(raw)
        return BatchItem(self.task_id, (), {}, self.retries, self.queue, reason + note, text)


def run_batch(task_name: str, items: list[BatchItem]) -> Any:
    """Executed in a pool process: look the task up by name and run the batch."""
    from worker.app import app

    task = app.tasks[task_name]
    with bound(**task.log_fields(items)):
        return run_with_signals(task, items, lambda: task.run_batch(items))


class BatchTask(Task):  # type: ignore[misc]
    """A task whose ``run_batch(items)`` receives buffered messages as a list."""

    abstract = True
    flush_every: int = 100
    flush_interval: float = 0.25
    #: Errors of a batch that hand its messages back to the broker (outages);
    #: any other error splits the batch to find the message that causes it.
    requeue_on: tuple[type[BaseException], ...] = ()

    def run_batch(self, items: list[BatchItem]) -> Any:  # pragma: no cover - abstract
        raise NotImplementedError

    def log_fields(self, items: list[BatchItem]) -> dict[str, Any]:
        """Fields bound to every log line of the batch (one message: its own ``task_id``)."""
        if len(items) == 1:
            return {"task_id": items[0].task_id}
        return {"task_ids": [i.task_id for i in items]}

    def prepare(self, item: BatchItem) -> BatchItem:
        """Check or parse one message in the consumer, before it is buffered.

        Return the item to send to the pool (plain, bounded data), or
        ``item.rejected(reason, raw)``.  Runs once per message, as it arrives.
        """
        return item

    def Strategy(self, task: Task, app: Any, consumer: Any) -> Callable[..., None]:
        """The consumer's handler for this task's messages (see :class:`_Batcher`)."""
        return _Batcher(task, app, consumer).handle


Pair = tuple[Any, BatchItem]  # Celery's request and what the pool gets of it


class _Batcher:
    """Buffers one task's requests in the consumer and hands them to the pool as batches.

    Runs in the worker's main process.  Every message gets its own
    ``task-received`` / ``task-started`` / ``task-succeeded`` (or
    ``task-failed``) event, batched or not, so monitoring sees each one.
    """

    def __init__(self, task: Task, app: Any, consumer: Any) -> None:
        self.task, self.app = task, app
        self.hostname = consumer.hostname
        self.eventer = consumer.event_dispatcher
        self.connection_errors = consumer.connection_errors
        self.pool = consumer.pool
        self.timer = consumer.timer
        self.request_cls = create_request_cls(
            symbol_by_name(task.Request), task, self.pool, self.hostname, self.eventer, app=app
        )
        self.buffer: list[Any] = []
        self.lock = threading.RLock()  # the timer may run in its own thread (synchronous loop)
        self.flush_timer: list[Any] = []

    # --- receiving ---------------------------------------------------------------

    def handle(
        self, message: Any, body: Any, ack: Any, reject: Any, callbacks: Any, **_: Any
    ) -> None:
        try:
            request = self._request(message, body, ack, reject)
        except Exception as exc:
            self._refuse(message, ack, reject, exc)
            return
        request.batch_item = self._prepare(request)
        send_received(request)
        if request.eta:
            self.timer.call_at(request.eta, self._add, (request,))
            return
        self._add(request)

    def _request(self, message: Any, body: Any, ack: Any, reject: Any) -> Any:
        """Celery's request for ``message``; decodes its body here, in the consumer."""
        payload = message.payload
        if body is None and isinstance(payload, dict) and "args" in payload:
            body, headers, decoded, utc = hybrid_to_proto2(message, payload)
        elif body is None:
            if not (
                isinstance(payload, list | tuple)
                and len(payload) == 3
                and isinstance(payload[0], list | tuple)
                and isinstance(payload[1], dict)
            ):
                raise ValueError("not a Celery task message body: [args, kwargs, embed]")
            body, headers, decoded, utc = (
                message.body,
                message.headers,
                False,
                self.app.uses_utc_timezone(),
            )
        else:
            body, headers, decoded, utc = proto1_to_proto2(message, body)
        return self.request_cls(
            message,
            on_ack=ack,
            on_reject=reject,
            app=self.app,
            hostname=self.hostname,
            eventer=self.eventer,
            task=self.task,
            connection_errors=self.connection_errors,
            body=body,
            headers=headers,
            decoded=decoded,
            utc=utc,
        )

    def _prepare(self, request: Any) -> BatchItem:
        item = BatchItem(
            task_id=request.id,
            args=tuple(request.args or ()),
            kwargs=dict(request.kwargs or {}),
            retries=int(request.request_dict.get("retries") or 0),
            queue=(request.delivery_info or {}).get("routing_key"),
        )
        try:
            prepared: BatchItem = self.task.prepare(item)
            return prepared
        except Exception as exc:
            log.exception("preparing message %s failed", request.id)
            reason = f"processing failed: {type(exc).__name__}: {str(exc)[:500]}"
            return item.rejected(reason, _raw_of(item))

    def _refuse(self, message: Any, ack: Any, reject: Any, exc: BaseException) -> None:
        """A body Celery cannot decode, or refuses: quarantined through the pool, then acked."""
        headers = message.headers if isinstance(message.headers, dict) else {}
        task_id = str(headers.get("id") or message.properties.get("correlation_id") or "")
        reason = (
            f"message body could not be decoded ({message.content_type or 'no content type'}): "
            f"{type(exc).__name__}: {str(exc)[:500]}"
        )
        if _stopping():
            return  # unacknowledged: handed back when the channel closes
        log.error("quarantining message %s: %s", task_id, reason)
        item = BatchItem(task_id, (), {}, 0).rejected(reason, message.body)

        def on_error(error: Any) -> None:
            requeue = isinstance(error, (WorkerLostError, *self.task.requeue_on))
            log.error("could not quarantine message %s (%r)", task_id, error)
            reject(log, self.connection_errors, requeue=requeue)

        self.pool.apply_async(
            run_batch,
            args=(self.task.name, [item]),
            callback=lambda _: ack(log, self.connection_errors),
            error_callback=on_error,
        )

    # --- buffering ---------------------------------------------------------------

    def _add(self, request: Any) -> None:
        with self.lock:
            self.buffer.append(request)
            full = len(self.buffer) >= self.task.flush_every
            if not full and not self.flush_timer:
                self.flush_timer.append(
                    self.timer.call_after(self.task.flush_interval, self._flush)
                )
        if full:
            self._flush()

    def _flush(self) -> None:
        with self.lock:
            if self.flush_timer:
                self.flush_timer.pop().cancel()
            requests = self.buffer[:]
            self.buffer.clear()
        if requests and _stopping():
            # Shutting down: the pool must get no new work (its result would
            # arrive after the parent stopped reading, and the pool process
            # would wait 30 s for it). The messages stay unacknowledged and
            # are handed back when the channel closes.
            log.info("shutting down: %d buffered message(s) handed back", len(requests))
            return
        if requests:
            self._dispatch([(r, r.batch_item) for r in requests])

    # --- handing batches to the pool -----------------------------------------------

    def _dispatch(self, batch: list[Pair]) -> None:
        """Hand a batch to the pool; on failure split it down to the culprit."""
        requests = [r for r, _ in batch]
        started = time.monotonic()
        send_started(requests)

        def on_done(result: Any) -> None:
            send_succeeded(requests, result=result, runtime=time.monotonic() - started)
            for r in requests:
                r.acknowledge()

        def on_error(exc: Any) -> None:
            if isinstance(exc, (WorkerLostError, *self.task.requeue_on)):
                # The pool process died, or an outage: hand the messages back.
                log.error(
                    "batch of %d failed in the pool (%r); requeueing",
                    len(batch),
                    exc,
                    extra={"task_ids": [r.id for r in requests]},
                )
                send_failed(requests, exc)
                for r in requests:
                    r.reject(requeue=True)
                return
            self._isolate(batch, exc)

        try:
            self.pool.apply_async(
                run_batch,
                args=(self.task.name, [item for _, item in batch]),
                callback=on_done,
                error_callback=on_error,
            )
        except Exception as exc:
            log.exception("could not hand a batch of %d to the pool", len(batch))
            self._isolate(batch, exc)

    def _isolate(self, batch: list[Pair], exc: BaseException) -> None:
        if len(batch) > 1:
            middle = len(batch) // 2
            self._dispatch(batch[:middle])
            self._dispatch(batch[middle:])
            return
        request, item = batch[0]
        if item.reason is not None:
            # Even quarantining it failed, and not for an outage: a defect
            # that a redelivery would only repeat.
            log.error("could not quarantine message %s (%r); dropped", item.task_id, exc)
            send_failed([request], exc)
            request.reject(requeue=False)
            return
        reason = f"processing failed: {type(exc).__name__}: {str(exc)[:500]}"
        self._dispatch([(request, item.rejected(reason, _raw_of(item)))])


def _stopping() -> bool:
    return worker_state.should_stop is not None or worker_state.should_terminate is not None


def _raw_of(item: BatchItem) -> Any:
    """What to keep of a message: its event when it has exactly one, else args and kwargs."""
    if item.raw is not None:
        return item.raw
    if not item.args and set(item.kwargs) == {"event"}:
        return item.kwargs["event"]
    return {"args": list(item.args), "kwargs": item.kwargs}
