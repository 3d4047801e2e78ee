"""Sending delivery tasks for outbox rows, once the transaction that wrote them committed.

Whoever writes outbox rows (:func:`worker.notifications.outbox.write_outbox`,
the relay, a dead-letter requeue) calls :func:`dispatch_after_commit`; the unit
of work (:mod:`worker.db.unit_of_work`) then calls :func:`dispatch_outbox`
with every row of the transaction, after the commit.  No caller sends by hand.

Sending needs the broker, which this package does not import: the Celery app
installs a :data:`Sender` with :func:`use_sender` when it is created, so every
process that can reach the broker (worker, CLI, API) dispatches, and a process
without one leaves the rows to the outbox relay.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

from sqlalchemy import Connection, Engine, select, update

from schema.tables import notification_outbox
from worker.core.clock import SystemClock
from worker.db.sql import in_values
from worker.db.unit_of_work import after_commit, unit_of_work
from worker.notifications.types import Channel, OutboxRef

log = logging.getLogger(__name__)

#: Task name of each channel's delivery task.
DELIVERY_TASKS = {Channel.IN_APP: "badges.deliver_in_app", Channel.PUSH: "badges.deliver_push"}
#: Outbox ids per delivery message (the delivery tasks accept up to this many).
DISPATCH_BATCH = 500

#: ``sender(task_name, kwargs)`` publishes one task message; raises
#: :class:`SendFailed` when the broker refuses or cannot be reached.
Sender = Callable[[str, dict[str, Any]], None]


class SendFailed(Exception):
    """The broker did not take the message (the relay will send it later)."""


_sender: Sender | None = None


def use_sender(sender: Sender | None) -> None:
    """Install how delivery tasks are published (the Celery app does, on creation)."""
    global _sender
    _sender = sender


def dispatch_after_commit(conn: Connection, refs: Sequence[OutboxRef]) -> None:
    """Send the delivery tasks of ``refs`` once the unit of work around ``conn`` committed."""
    after_commit(conn, _DispatchCommitted(conn.engine), refs)


@dataclass(frozen=True)
class _DispatchCommitted:
    """The after-commit action: equal for one engine, so a unit of work dispatches once."""

    engine: Engine

    def __call__(self, refs: list[OutboxRef]) -> None:
        dispatch_outbox(refs, engine=self.engine)  # looked up at call time: tests replace it


def dispatch_outbox(refs: Sequence[OutboxRef], *, engine: Engine | None = None) -> None:
    """Send the delivery tasks of outbox rows that are committed.

    One message per channel and :data:`DISPATCH_BATCH` rows, not one per row:
    the notification fan-out of a busy ingest batch or of a whole import costs
    a handful of messages.  If this process dies before (or while) sending,
    the rows stay undispatched and the outbox relay sends them after its grace
    period; a batch the broker refused is left to the relay the same way.
    ``engine`` is the database the rows are in (default: the configured one).
    """
    if not refs:
        return
    if _sender is None:
        log.warning("no broker in this process: %d outbox row(s) left to the relay", len(refs))
        return
    # Stamped *before* sending, in a short transaction of its own: once a
    # message is out, its delivery task updates the same rows, and stamping
    # afterwards could deadlock with it.  A batch the broker refuses is
    # un-stamped; one lost to a crash right here is re-sent by the relay after
    # its grace period, like any row whose dispatch never happened.
    stamped_at = SystemClock().now()
    _stamp(engine, [ref.id for ref in refs], stamped_at)
    refused: list[UUID] = []
    for channel, task_name in DELIVERY_TASKS.items():
        ids = [ref.id for ref in refs if ref.channel is channel]
        for start in range(0, len(ids), DISPATCH_BATCH):
            batch = ids[start : start + DISPATCH_BATCH]
            try:
                _sender(task_name, {"outbox_ids": [str(i) for i in batch]})
            except SendFailed:
                log.warning(
                    "could not enqueue delivery of %d %s outbox row(s); the relay will retry",
                    len(batch),
                    channel.value,
                )
                refused += batch
    if refused:
        _stamp(engine, refused, None, only_if=stamped_at)


def _stamp(
    engine: Engine | None,
    ids: list[UUID],
    at: datetime | None,
    *,
    only_if: datetime | None = None,
) -> None:
    """Set ``dispatched_at`` of ``ids`` (rows locked in id order: no deadlock between stampers)."""
    t = notification_outbox.c
    with unit_of_work(engine) as conn:
        locked = select(t.id).where(in_values(conn, t.id, sorted(ids))).order_by(t.id)
        if only_if is not None:
            locked = locked.where(t.dispatched_at == only_if)
        locked = locked.with_for_update()
        conn.execute(
            update(notification_outbox)
            .where(t.id.in_(locked.scalar_subquery()))
            .values(dispatched_at=at)
        )
