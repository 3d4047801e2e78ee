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
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from billiard.exceptions import WorkerLostError
from celery import Task
from celery.utils.imports import symbol_by_name
from celery.worker import state as worker_state
from celery.worker.request import create_request_cls
from celery.worker.strategy import hybrid_to_proto2, proto1_to_proto2

from worker.quarantine import bounded_raw

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
    return task.run_batch(items)


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

    def prepare(self, item: BatchItem) -> BatchItem:
        """Check or parse one message in the consumer, before it is buffered.

        Return the item to send to the pool (plain, bounded data), or
        ``item.rejected(reason, raw)``.  Runs once per message, as it arrives.
        """
        return item

    def Strategy(self, task: Task, app: Any, consumer: Any) -> Callable[..., None]:
        hostname = consumer.hostname
        eventer = consumer.event_dispatcher
        connection_errors = consumer.connection_errors
        pool = consumer.pool
        timer = consumer.timer
        request_cls = create_request_cls(
            symbol_by_name(task.Request), task, pool, hostname, eventer, app=app
        )
        buffer: list[Any] = []
        lock = threading.RLock()  # the timer may run in its own thread (synchronous loop)
        flush_timer: list[Any] = []

        def flush() -> None:
            with lock:
                if flush_timer:
                    flush_timer.pop().cancel()
                requests = buffer[:]
                buffer.clear()
            if requests and _stopping():
                # Shutting down: the pool must get no new work (its result
                # would arrive after the parent stopped reading, and the pool
                # process would wait 30 s for it). The messages stay
                # unacknowledged and are handed back when the channel closes.
                log.info("shutting down: %d buffered message(s) handed back", len(requests))
                return
            if requests:
                _dispatch(requests)

        def add(request: Any) -> None:
            with lock:
                buffer.append(request)
                full = len(buffer) >= task.flush_every
                if not full and not flush_timer:
                    flush_timer.append(timer.call_after(task.flush_interval, flush))
            if full:
                flush()

        def _dispatch(requests: list[Any]) -> None:
            _dispatch_items([(r, r.batch_item) for r in requests])

        def _dispatch_items(batch: list[tuple[Any, BatchItem]]) -> None:
            """Hand a batch to the pool; on failure split it down to the culprit."""
            items = [item for _, item in batch]

            def on_done(_: Any) -> None:
                for r, _item in batch:
                    r.acknowledge()

            def on_error(exc: Any) -> None:
                if isinstance(exc, (WorkerLostError, *task.requeue_on)):
                    # The pool process died, or an outage: hand the messages back.
                    log.error("batch of %d failed in the pool (%r); requeueing", len(batch), exc)
                    for r, _item in batch:
                        r.reject(requeue=True)
                    return
                _isolate(batch, exc)

            try:
                pool.apply_async(
                    run_batch,
                    args=(task.name, items),
                    callback=on_done,
                    error_callback=on_error,
                )
            except Exception as exc:
                log.exception("could not hand a batch of %d to the pool", len(batch))
                _isolate(batch, exc)

        def _isolate(batch: list[tuple[Any, BatchItem]], exc: BaseException) -> None:
            if len(batch) > 1:
                middle = len(batch) // 2
                _dispatch_items(batch[:middle])
                _dispatch_items(batch[middle:])
                return
            request, item = batch[0]
            if item.reason is not None:
                # Even quarantining it failed, and not for an outage: a defect
                # that a redelivery would only repeat.
                log.error("could not quarantine message %s (%r); dropped", item.task_id, exc)
                request.reject(requeue=False)
                return
            reason = f"processing failed: {type(exc).__name__}: {str(exc)[:500]}"
            _dispatch_items([(request, item.rejected(reason, _raw_of(item)))])

        def handler(
            message: Any, body: Any, ack: Any, reject: Any, callbacks: Any, **_: Any
        ) -> None:
            try:
                request = _request(message, body, ack, reject)
            except Exception as exc:
                _refuse(message, ack, reject, exc)
                return
            request.batch_item = _prepare(request)
            if request.eta:
                timer.call_at(request.eta, add, (request,))
                return
            add(request)

        def _request(message: Any, body: Any, ack: Any, reject: Any) -> Any:
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
                    app.uses_utc_timezone(),
                )
            else:
                body, headers, decoded, utc = proto1_to_proto2(message, body)
            return request_cls(
                message,
                on_ack=ack,
                on_reject=reject,
                app=app,
                hostname=hostname,
                eventer=eventer,
                task=task,
                connection_errors=connection_errors,
                body=body,
                headers=headers,
                decoded=decoded,
                utc=utc,
            )

        def _prepare(request: Any) -> BatchItem:
            item = BatchItem(
                task_id=request.id,
                args=tuple(request.args or ()),
                kwargs=dict(request.kwargs or {}),
                retries=int(request.request_dict.get("retries") or 0),
                queue=(request.delivery_info or {}).get("routing_key"),
            )
            try:
                prepared: BatchItem = task.prepare(item)
                return prepared
            except Exception as exc:
                log.exception("preparing message %s failed", request.id)
                reason = f"processing failed: {type(exc).__name__}: {str(exc)[:500]}"
                return item.rejected(reason, _raw_of(item))

        def _refuse(message: Any, ack: Any, reject: Any, exc: BaseException) -> None:
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
                requeue = isinstance(error, (WorkerLostError, *task.requeue_on))
                log.error("could not quarantine message %s (%r)", task_id, error)
                reject(log, connection_errors, requeue=requeue)

            pool.apply_async(
                run_batch,
                args=(task.name, [item]),
                callback=lambda _: ack(log, connection_errors),
                error_callback=on_error,
            )

        return handler


def _stopping() -> bool:
    return worker_state.should_stop is not None or worker_state.should_terminate is not None


def _raw_of(item: BatchItem) -> Any:
    """What to keep of a message: its event when it has exactly one, else args and kwargs."""
    if item.raw is not None:
        return item.raw
    if not item.args and set(item.kwargs) == {"event"}:
        return item.kwargs["event"]
    return {"args": list(item.args), "kwargs": item.kwargs}
