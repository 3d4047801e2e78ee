"""Per-message task events and signals for batched consumption.

Monitoring tools (Flower, celery-exporter) follow tasks through the worker's
*events* (``task-received``, ``task-started``, ``task-succeeded``,
``task-failed``), and tracing/error tools (Sentry, OpenTelemetry) through the
*signals* ``task_prerun``, ``task_postrun``, ``task_success`` and
``task_failure``.  Celery's own strategy and tracer send both per message;
a batch replaces them, so these helpers send the same per message of the
batch: events from the consumer (main process) with the fields Celery's
strategy and request send, signals in the pool process around the batch
function, each with the message's own task id, args and kwargs.  The
celery-batches package does the same per request.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from typing import Any

from billiard.einfo import ExceptionInfo
from celery import signals, states
from celery.utils.saferepr import saferepr


def send_received(request: Any) -> None:
    """``task-received`` for one message, as Celery's default strategy sends it."""
    request.send_event(
        "task-received",
        name=request.name,
        args=request.argsrepr,
        kwargs=request.kwargsrepr,
        root_id=request.root_id,
        parent_id=request.parent_id,
        retries=request.request_dict.get("retries", 0),
        eta=request.eta and request.eta.isoformat(),
        expires=request.expires and request.expires.isoformat(),
    )


def send_started(requests: Sequence[Any]) -> None:
    for request in requests:
        request.send_event("task-started")


def send_succeeded(requests: Sequence[Any], *, result: Any, runtime: float) -> None:
    shown = saferepr(result, 1024)
    for request in requests:
        request.send_event("task-succeeded", result=shown, runtime=runtime)


def send_failed(requests: Sequence[Any], exc: BaseException | Any) -> None:
    for request in requests:
        request.send_event("task-failed", exception=saferepr(exc, 1024), traceback=None)


def run_with_signals(task: Any, items: Sequence[Any], call: Callable[[], Any]) -> Any:
    """Run ``call()`` (the batch) between per-message prerun and postrun/success/failure signals.

    ``items`` carry ``task_id``, ``args`` and ``kwargs`` (a
    :class:`~worker.tasks.batching.BatchItem`).  The exception, if any, is
    re-raised after the signals went out, so the batch's own error handling
    (requeue) is unchanged.
    """
    for item in items:
        signals.task_prerun.send(
            sender=task, task_id=item.task_id, task=task, args=item.args, kwargs=item.kwargs
        )
    retval: Any = None
    state = states.SUCCESS
    try:
        retval = call()
    except BaseException as exc:
        state = states.FAILURE
        einfo = ExceptionInfo(sys.exc_info())
        for item in items:
            signals.task_failure.send(
                sender=task,
                task_id=item.task_id,
                exception=exc,
                args=item.args,
                kwargs=item.kwargs,
                traceback=einfo.tb,
                einfo=einfo,
            )
        raise
    else:
        for _ in items:
            signals.task_success.send(sender=task, result=retval)
    finally:
        for item in items:
            signals.task_postrun.send(
                sender=task,
                task_id=item.task_id,
                task=task,
                args=item.args,
                kwargs=item.kwargs,
                retval=retval,
                state=state,
            )
    return retval
