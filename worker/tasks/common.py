"""What every task shares: the errors worth retrying and after-commit dispatch."""

from __future__ import annotations

import logging
from collections.abc import Sequence

from kombu.exceptions import OperationalError as BrokerError
from sqlalchemy import update
from sqlalchemy.exc import InterfaceError, OperationalError

from schema.tables import notification_outbox
from worker.app import app
from worker.clock import SystemClock
from worker.db import unit_of_work
from worker.outbox import Channel, OutboxRef

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


def dispatch_outbox(refs: Sequence[OutboxRef]) -> None:
    """Send one delivery task per outbox row, *after* the writing transaction committed.

    If this process dies before (or while) sending, the rows stay undispatched
    and the outbox relay sends them after its grace period.
    """
    if not refs:
        return
    sent = []
    for ref in refs:
        try:
            app.send_task(DELIVERY_TASKS[ref.channel], kwargs={"outbox_id": str(ref.id)})
        except BrokerError:
            log.warning("could not enqueue delivery of outbox %s; the relay will retry", ref.id)
            continue
        sent.append(ref.id)
    if sent:
        with unit_of_work() as conn:
            conn.execute(
                update(notification_outbox)
                .where(notification_outbox.c.id.in_(sent))
                .values(dispatched_at=SystemClock().now())
            )
