"""Celery wiring of logging, metrics and the heartbeat (see :mod:`worker.observability`).

* ``LOG_FORMAT=json``: Celery configures the worker's and beat's handlers
  as usual; ``after_setup_logger``/``after_setup_task_logger`` then give
  them the JSON formatter.  Either format gets the context filter, and each
  plain task binds its ``task_id`` for its lines (a batch binds its own
  fields: :meth:`worker.tasks.batching.BatchTask.log_fields`).
* ``WORKER_METRICS_PORT``: the main process serves the summed metrics of
  its pool processes (``worker_init``), and a pool process's files are
  tidied when it exits.
* ``WORKER_HEARTBEAT_FILE``: :class:`HeartbeatStep`, a consumer bootstep:
  it starts with the consumer (connected, consuming) and stops when the
  consumer stops or restarts after a lost connection, so the file goes stale
  exactly when no messages can be consumed.
"""

from __future__ import annotations

import logging
import os
import shutil
import time
from contextlib import ExitStack
from typing import Any

from celery import bootsteps
from celery.signals import (
    after_setup_logger,
    after_setup_task_logger,
    task_postrun,
    task_prerun,
    worker_init,
    worker_process_shutdown,
    worker_shutdown,
)

from worker.app import app
from worker.core.clock import SystemClock
from worker.core.settings import get_settings
from worker.ingestion.ingest import IngestResult
from worker.observability import heartbeat, metrics
from worker.observability.context import bound
from worker.observability.logging import use_format
from worker.observability.metrics_env import MULTIPROC_ENV
from worker.tasks.batching import BatchItem, BatchTask

log = logging.getLogger(__name__)


@after_setup_logger.connect
@after_setup_task_logger.connect
def _log_format(logger: logging.Logger, **_: Any) -> None:
    use_format(logger, get_settings().log_format)


_task_contexts: dict[str, ExitStack] = {}


@task_prerun.connect
def _bind_task(sender: Any = None, task_id: str | None = None, **_: Any) -> None:
    if isinstance(sender, BatchTask) or task_id is None:
        return  # a batch binds the fields of all its messages itself
    stack = ExitStack()
    stack.enter_context(bound(task_id=task_id))
    _task_contexts[task_id] = stack


@task_postrun.connect
def _unbind_task(task_id: str | None = None, **_: Any) -> None:
    stack = _task_contexts.pop(task_id or "", None)
    if stack is not None:
        stack.close()


@worker_init.connect
def _serve_metrics(**_: Any) -> None:
    port = get_settings().worker_metrics_port
    if port is not None:
        metrics.serve(port)


@worker_process_shutdown.connect
def _pool_process_exited(pid: int | None = None, **_: Any) -> None:
    metrics.process_exited(pid or os.getpid())


@worker_shutdown.connect
def _remove_metrics_dir(**_: Any) -> None:
    folder = os.environ.get(MULTIPROC_ENV, "")
    if os.path.basename(folder).startswith("badges-metrics-"):  # ours, not the operator's
        shutil.rmtree(folder, ignore_errors=True)


class HeartbeatStep(bootsteps.StartStopStep):  # type: ignore[misc]
    """Touches ``WORKER_HEARTBEAT_FILE`` every few seconds while the consumer runs."""

    requires = ("celery.worker.consumer.tasks:Tasks",)

    def __init__(self, parent: Any, **kwargs: Any) -> None:
        super().__init__(parent, **kwargs)
        self.path = get_settings().worker_heartbeat_file
        self.timer_entry: Any = None

    def include_if(self, parent: Any) -> bool:
        return self.path is not None

    def start(self, parent: Any) -> None:
        assert self.path is not None
        heartbeat.touch(self.path)
        self.timer_entry = parent.timer.call_repeatedly(
            heartbeat.HEARTBEAT_INTERVAL_S, heartbeat.touch, (self.path,)
        )

    def stop(self, parent: Any) -> None:
        if self.timer_entry is not None:
            self.timer_entry.cancel()
            self.timer_entry = None

    shutdown = stop


app.steps["consumer"].add(HeartbeatStep)


def event_id_of(payload: Any) -> str | None:
    if isinstance(payload, dict) and payload.get("event_id") is not None:
        return str(payload["event_id"])
    return None


def _payload(item: BatchItem) -> Any:
    return item.kwargs.get("event") if not item.args else None


def ingest_log_fields(items: list[BatchItem]) -> dict[str, Any]:
    """A batch's lines carry its task and event ids (one message: ``task_id``/``event_id``)."""
    event_ids = [e for e in (event_id_of(_payload(i)) for i in items) if e is not None]
    if len(items) == 1:
        return {"task_id": items[0].task_id, "event_id": event_ids[0] if event_ids else None}
    return {"task_ids": [i.task_id for i in items], "event_ids": event_ids}


def record_ingest(result: IngestResult, items: list[BatchItem], *, seconds: float) -> None:
    """Count a committed ingest batch: outcomes per message, awards, revocations, ages."""
    metrics.record_events(
        applied=result.applied,
        duplicates=result.duplicates,
        stale=result.stale,
        quarantined=result.quarantined,
    )
    metrics.record_awards(
        "evaluation",
        len(result.awarded),
        conflicts=result.award_conflicts,
        revoked=len(result.revoked),
    )
    metrics.observe_batch(seconds)
    metrics.observe_event_ages([_payload(i) for i in items], committed_at=SystemClock().now())
    for badge in result.awarded:
        mentor = str(badge.peer_mentor_id)
        log.info(
            "awarded %s to mentor %s",
            badge.code,
            mentor,
            extra={
                "peer_mentor_id": mentor,
                "badge_code": badge.code,
                # The mentor's events in this batch: what a missing badge is traced by.
                "event_ids": [
                    event_id_of(p)
                    for p in map(_payload, items)
                    if _mentor_of(p) == mentor and event_id_of(p)
                ],
            },
        )


def _mentor_of(payload: Any) -> str | None:
    activity = payload.get("activity") if isinstance(payload, dict) else None
    return str(activity.get("peer_mentor_id")) if isinstance(activity, dict) else None


def job_succeeded(job: str, *, started: float) -> None:
    """Record a periodic job's success (its own small transaction; a failure here is logged)."""
    from worker.db.unit_of_work import unit_of_work
    from worker.observability.job_runs import record_success

    try:
        with unit_of_work() as conn:
            record_success(
                conn,
                job,
                finished_at=SystemClock().now(),
                duration_s=time.monotonic() - started,
            )
    except Exception:
        log.warning("could not record the success of %s", job, exc_info=True)
