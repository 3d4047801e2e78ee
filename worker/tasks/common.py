"""What every task shares: the errors worth retrying and after-commit dispatch."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from uuid import UUID

from kombu.exceptions import OperationalError as BrokerError
from sqlalchemy import update
from sqlalchemy.exc import InterfaceError, OperationalError

from schema.tables import notification_outbox
from worker.app import app
from worker.core.clock import SystemClock
from worker.db.engine import unit_of_work
from worker.db.sql import in_values
from worker.notifications.outbox import Channel, OutboxRef

log = logging.getLogger(__name__)

#: Outages (connection refused or lost, server shutting down, broker down), not
#: bad input: retried with backoff, never quarantined.
TRANSIENT_ERRORS: tuple[type[BaseException], ...] = (
    OperationalError,
    InterfaceError,
    BrokerError,
    ConnectionError,
)

DELIVERY_TASKS = {Channel.IN_APP: "badges.deliver_in_app", Channel.PUSH: "badges.deliver_push"}
#: Outbox ids per delivery message (the tasks accept up to ``MAX_BATCH``).
DISPATCH_BATCH = 500


def dispatch_outbox(refs: Sequence[OutboxRef]) -> None:
    """Send the delivery tasks of outbox rows, *after* the writing transaction committed.

    One message per channel and :data:`DISPATCH_BATCH` rows, not one per row:
    the notification fan-out of a busy ingest batch or of a whole import costs
    a handful of messages.  If this process dies before (or while) sending,
    the rows stay undispatched and the outbox relay sends them after its grace
    period; a batch the broker refused is left to the relay the same way.
    """
    if not refs:
        return
    sent: list[UUID] = []
    for channel, task_name in DELIVERY_TASKS.items():
        ids = [ref.id for ref in refs if ref.channel is channel]
        for start in range(0, len(ids), DISPATCH_BATCH):
            batch = ids[start : start + DISPATCH_BATCH]
            try:
                app.send_task(task_name, kwargs={"outbox_ids": [str(i) for i in batch]})
            except BrokerError:
                log.warning(
                    "could not enqueue delivery of %d %s outbox row(s); the relay will retry",
                    len(batch),
                    channel.value,
                )
                continue
            sent += batch
    if sent:
        with unit_of_work() as conn:
            conn.execute(
                update(notification_outbox)
                .where(in_values(conn, notification_outbox.c.id, sent))
                .values(dispatched_at=SystemClock().now())
            )
