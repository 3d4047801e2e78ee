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
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from celery import Task
from celery.utils.imports import symbol_by_name
from celery.worker.request import create_request_cls
from celery.worker.strategy import hybrid_to_proto2, proto1_to_proto2

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

    def run_batch(self, items: list[BatchItem]) -> Any:  # pragma: no cover - abstract
        raise NotImplementedError

    def log_fields(self, items: list[BatchItem]) -> dict[str, Any]:
        """Fields bound to every log line of the batch (one message: its own ``task_id``)."""
        if len(items) == 1:
            return {"task_id": items[0].task_id}
        return {"task_ids": [i.task_id for i in items]}

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
            items = [
                BatchItem(
                    task_id=r.id,
                    args=tuple(r.args or ()),
                    kwargs=dict(r.kwargs or {}),
                    retries=int(r.request_dict.get("retries") or 0),
                    queue=(r.delivery_info or {}).get("routing_key"),
                )
                for r in requests
            ]

            started = time.monotonic()
            send_started(requests)

            def on_done(result: Any) -> None:
                send_succeeded(requests, result=result, runtime=time.monotonic() - started)
                for r in requests:
                    r.acknowledge()

            def on_error(exc: Any) -> None:
                # The pool process died or the call failed: hand the messages back.
                log.error(
                    "batch of %d failed in the pool (%r); requeueing",
                    len(requests),
                    exc,
                    extra={"task_ids": [r.id for r in requests]},
                )
                send_failed(requests, exc)
                for r in requests:
                    r.reject(requeue=True)

            pool.apply_async(
                run_batch,
                args=(task.name, items),
                callback=on_done,
                error_callback=on_error,
            )

        def handler(
            message: Any, body: Any, ack: Any, reject: Any, callbacks: Any, **_: Any
        ) -> None:
            if body is None and "args" not in message.payload:
                body, headers, decoded, utc = (
                    message.body,
                    message.headers,
                    False,
                    app.uses_utc_timezone(),
                )
            elif "args" in message.payload:
                body, headers, decoded, utc = hybrid_to_proto2(message, message.payload)
            else:
                body, headers, decoded, utc = proto1_to_proto2(message, body)
            request = request_cls(
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
            send_received(request)
            if request.eta:
                timer.call_at(request.eta, add, (request,))
                return
            add(request)

        return handler
