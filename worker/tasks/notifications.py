"""Notification tasks: ``badges.deliver_in_app``, ``badges.deliver_push``, ``badges.relay_outbox``.

Delivery tasks run on queue ``notifications`` (celeryconfig routes
``badges.deliver_*``), so a slow gateway never holds up ingestion.  Each
takes one keyword argument: ``outbox_ids`` (a list of at most
:data:`MAX_BATCH` outbox ids, as ``dispatch_outbox`` sends them) or
``outbox_id`` (one id), and is idempotent on every id.

Batches keep the message count low: an ingest batch that awards twenty
badges sends two messages, not forty.  In-app rows of a batch are delivered
in one transaction with a constant number of statements.  A push batch is
marked ``skipped`` in one statement when no gateway is configured; otherwise
it fans out into one ``deliver_push`` message per row, because each push is
an HTTP call with its own attempts, backoff and dead letter.

Retry policy (push): the attempt count lives in the outbox row, not in the
message, so it survives relays and redeliveries.  A retryable failure
re-schedules the task with exponential backoff and jitter, honouring the
gateway's ``Retry-After``, never longer than ``max_retry_delay_s`` (below the
broker's visibility timeout); after ``push_max_attempts`` the row is dead.
Database and broker outages are retried by Celery (``autoretry_for``) and do
not count as push attempts.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections import Counter
from typing import Any
from uuid import UUID

from celery import Task
from pydantic import Field, ValidationError, model_validator

from worker.app import app
from worker.core.clock import SystemClock
from worker.core.models import FrozenModel
from worker.core.settings import Settings, get_settings
from worker.db.engine import get_engine
from worker.db.unit_of_work import unit_of_work
from worker.notifications import in_app, push
from worker.notifications.gateway import PushGateway, retry_delay
from worker.notifications.items import Delivery
from worker.notifications.push import NO_GATEWAY_REASON
from worker.notifications.relay import DEFAULT_BATCH_SIZE, claim_undispatched
from worker.observability.metrics import record_notifications
from worker.tasks.common import TRANSIENT_ERRORS, locked_job
from worker.tasks.observability import job_succeeded

log = logging.getLogger(__name__)

RELAY_JOB = "relay_outbox"
#: A push lease lasts the gateway timeouts plus this much (slow DNS, GC pauses).
PUSH_LEASE_SLACK_S = 30.0
#: Upper bound of relay batches per run, so one run cannot monopolise a worker.
MAX_RELAY_BATCHES = 20
#: Celery's own retry limit for outages; push attempts are counted in the row.
MAX_OUTAGE_RETRIES = 20


#: Most outbox ids one delivery message may carry (``dispatch_outbox`` sends at most this many).
MAX_BATCH = 1000


class DeliveryMessage(FrozenModel):
    """The message of a delivery task: ``outbox_ids`` (a batch) or ``outbox_id`` (one)."""

    outbox_id: UUID | None = None
    outbox_ids: list[UUID] | None = Field(default=None, min_length=1, max_length=MAX_BATCH)

    @model_validator(mode="after")
    def _exactly_one(self) -> DeliveryMessage:
        if (self.outbox_id is None) == (self.outbox_ids is None):
            raise ValueError("give exactly one of outbox_id and outbox_ids")
        return self

    @property
    def ids(self) -> list[UUID]:
        return [self.outbox_id] if self.outbox_id is not None else list(self.outbox_ids or ())


_outage_retry: dict[str, Any] = {
    "autoretry_for": TRANSIENT_ERRORS,
    "retry_backoff": True,
    "retry_backoff_max": get_settings().max_retry_delay_s,
    "retry_jitter": True,
    "max_retries": MAX_OUTAGE_RETRIES,
}


@app.task(bind=True, name="badges.deliver_in_app", **_outage_retry)
def deliver_in_app(self: Task, *args: Any, **kwargs: Any) -> dict[str, int] | str:
    """Insert the in-app notifications of a batch of outbox rows (idempotent).

    Returns how many rows ended in each outcome (``delivered``, ``already_done``, …).
    """
    message = _parse(self, args, kwargs)
    if message is None:
        return "invalid"
    with unit_of_work() as conn:
        outcomes = in_app.deliver_in_app_batch(
            conn, message.ids, now=SystemClock().now(), tz=get_settings().tz
        )
    return _summarise("in-app", outcomes)


@app.task(bind=True, name="badges.deliver_push", **_outage_retry)
def deliver_push(self: Task, *args: Any, **kwargs: Any) -> dict[str, int] | str:
    """Send push notifications through the gateway; retry, dead-letter, or skip.

    A batch (``outbox_ids``) is skipped in one statement when no gateway is
    configured, and otherwise fans out into one message per row.
    """
    message = _parse(self, args, kwargs)
    if message is None:
        return "invalid"
    settings = get_settings()
    if not settings.push_gateway_url:
        _log_no_gateway_once()
        with unit_of_work() as conn:
            outcomes = push.skip_push_batch(
                conn, message.ids, now=SystemClock().now(), reason=NO_GATEWAY_REASON
            )
        return _summarise("push", outcomes)
    if message.outbox_id is None:
        for outbox_id in message.ids:
            deliver_push.apply_async(kwargs={"outbox_id": str(outbox_id)})
        return {"fanned_out": len(message.ids)}
    return _push_one(settings, message.outbox_id).value


def _push_one(settings: Settings, outbox_id: UUID) -> Delivery:
    """One push attempt for one row; a retryable failure re-sends the task with backoff."""
    attempt = push.deliver_push(
        get_engine(),
        outbox_id,
        send=lambda body, key: _gateway(settings).send(body, idempotency_key=key),
        clock=SystemClock(),
        tz=settings.tz,
        max_attempts=settings.push_max_attempts,
        lease_s=settings.push_connect_timeout_s + settings.push_read_timeout_s + PUSH_LEASE_SLACK_S,
    )
    if attempt.delivery is Delivery.RETRY:
        countdown = retry_delay(
            attempt.attempts,
            base_s=settings.push_backoff_base_s,
            cap_s=settings.max_retry_delay_s,
            jitter=random.random(),
            retry_after_s=attempt.retry_after_s,
        )
        log.warning(
            "push %s attempt %d failed (%s); retrying in %.2fs",
            outbox_id,
            attempt.attempts,
            attempt.error,
            countdown,
        )
        # A fresh message rather than self.retry(): the row counts push attempts,
        # and Celery's retry counter (kept for outages) must not stop them first.
        deliver_push.apply_async(kwargs={"outbox_id": str(outbox_id)}, countdown=countdown)
    elif attempt.delivery is Delivery.DEAD:
        log.error(
            "push %s is dead after %d attempt(s): %s", outbox_id, attempt.attempts, attempt.error
        )
    else:
        log.info("push %s: %s", outbox_id, attempt.delivery)
    record_notifications("push", [attempt.delivery.value])
    return attempt.delivery


def _summarise(channel: str, outcomes: dict[UUID, Delivery]) -> dict[str, int]:
    counts = dict(Counter(outcome.value for outcome in outcomes.values()))
    record_notifications(channel.replace("-", "_"), (o.value for o in outcomes.values()))
    if len(outcomes) == 1:
        (outbox_id,) = outcomes
        log.info("%s %s: %s", channel, outbox_id, outcomes[outbox_id])
    else:
        log.info("%s batch of %d: %s", channel, len(outcomes), counts)
    return counts


@app.task(name="badges.relay_outbox")
def relay_outbox() -> int:
    """Re-send outbox rows whose delivery task never got out (periodic, celery beat).

    A job lock makes overlapping runs (two beats, a slow run) a no-op; row
    claims are safe with several relays anyway (``worker.notifications.relay``).
    """
    settings = get_settings()
    started = time.monotonic()
    total = 0
    for _ in range(MAX_RELAY_BATCHES):
        with locked_job(RELAY_JOB) as conn:
            if conn is None:
                return total
            refs = claim_undispatched(
                conn,
                now=SystemClock().now(),
                grace_period_s=settings.outbox_grace_period_s,
                retry_overdue_s=settings.max_retry_delay_s + settings.outbox_grace_period_s,
            )
        total += len(refs)
        if len(refs) < DEFAULT_BATCH_SIZE:
            break
    if total:
        log.warning("outbox relay re-sent %d notification(s)", total)
    job_succeeded("relay_outbox", started=started)
    return total


def _parse(task: Task, args: tuple[Any, ...], kwargs: dict[str, Any]) -> DeliveryMessage | None:
    """The task's message, or None (logged, acknowledged) when malformed: retrying cannot help."""
    try:
        if args:
            raise ValueError("positional arguments are not accepted")
        return DeliveryMessage.model_validate(kwargs)
    except (ValidationError, ValueError) as exc:
        log.error("dropping malformed %s message %s: %s", task.name, task.request.id, exc)
        return None


_gateways: dict[tuple[str, str | None, float, float], PushGateway] = {}
_gateway_lock = threading.Lock()
_warned_no_gateway = False


def _gateway(settings: Settings) -> PushGateway:
    """One HTTP client per worker process (created lazily, so after the fork)."""
    assert settings.push_gateway_url is not None
    key = (
        settings.push_gateway_url,
        settings.push_gateway_token,
        settings.push_connect_timeout_s,
        settings.push_read_timeout_s,
    )
    with _gateway_lock:
        if key not in _gateways:
            _gateways[key] = PushGateway(
                settings.push_gateway_url,
                token=settings.push_gateway_token,
                connect_timeout_s=settings.push_connect_timeout_s,
                read_timeout_s=settings.push_read_timeout_s,
            )
        return _gateways[key]


def _log_no_gateway_once() -> None:
    global _warned_no_gateway
    if not _warned_no_gateway:
        _warned_no_gateway = True
        log.warning("push channel disabled: %s; push notifications are skipped", NO_GATEWAY_REASON)
