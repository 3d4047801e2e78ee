"""Outbox rows as delivery sees them: loading, state changes, counts, dead letters (SQL).

Every change of an outbox row's state is written with ``updated_at`` (and
``delivered_at`` when sent), so the table itself shows each row's history:
``pending`` -> (``failed`` -> …) -> ``sent`` | ``dead`` | ``skipped``.
The channels' delivery lives in :mod:`worker.notifications.in_app` and
:mod:`worker.notifications.push`; both load rows and set states through here.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any
from uuid import UUID

from sqlalchemy import Connection, func, select, update

from schema.tables import notification_outbox, organisations
from worker.db.sql import in_values
from worker.notifications.dispatch import dispatch_after_commit
from worker.notifications.types import Channel, OutboxRef, OutboxState

#: States after which a row is never delivered again (``retry-dead`` reopens dead ones).
FINAL_STATES = frozenset({OutboxState.SENT, OutboxState.DEAD, OutboxState.SKIPPED})


class Delivery(StrEnum):
    """What one delivery task did."""

    DELIVERED = "delivered"
    ALREADY_DONE = "already_done"  # a final state was reached before (duplicate task)
    IN_FLIGHT = "in_flight"  # another task is delivering this row right now
    MISSING = "missing"  # no such outbox row (or another channel's)
    SKIPPED = "skipped"
    RETRY = "retry"  # failed, another attempt should follow
    DEAD = "dead"


@dataclass(frozen=True)
class OutboxItem:
    id: UUID
    channel: Channel
    kind: str
    peer_mentor_id: UUID
    organisation_id: UUID
    payload: dict[str, Any]
    state: OutboxState
    attempts: int
    backfill: bool
    language: str


def _item_query() -> Any:
    """Outbox rows with their organisation's language (``nb`` when unknown)."""
    return select(
        notification_outbox,
        func.coalesce(organisations.c.language, "nb").label("language"),
    ).select_from(
        notification_outbox.outerjoin(
            organisations, organisations.c.id == notification_outbox.c.organisation_id
        )
    )


def _item(row: Any) -> OutboxItem:
    return OutboxItem(
        id=row.id,
        channel=Channel(row.channel),
        kind=row.kind,
        peer_mentor_id=row.peer_mentor_id,
        organisation_id=row.organisation_id,
        payload=dict(row.payload),
        state=OutboxState(row.state),
        attempts=row.attempts,
        backfill=row.backfill,
        language=row.language,
    )


def load_item(conn: Connection, outbox_id: UUID, *, lock: bool = True) -> OutboxItem | None:
    """The outbox row with its organisation's language; locked ``FOR UPDATE`` by default."""
    query = _item_query().where(notification_outbox.c.id == outbox_id)
    if lock:
        query = query.with_for_update(of=notification_outbox)
    row = conn.execute(query).first()
    return None if row is None else _item(row)


def load_items(conn: Connection, outbox_ids: Collection[UUID]) -> dict[UUID, OutboxItem]:
    """Several outbox rows, locked ``FOR UPDATE`` in id order (no deadlock between batches)."""
    query = (
        _item_query()
        .where(in_values(conn, notification_outbox.c.id, sorted(set(outbox_ids))))
        .order_by(notification_outbox.c.id)
        .with_for_update(of=notification_outbox)
    )
    return {row.id: _item(row) for row in conn.execute(query)}


def set_state(
    conn: Connection,
    item: OutboxItem,
    state: OutboxState,
    *,
    now: datetime,
    error: str | None = None,
    attempted: bool = False,
) -> None:
    """Move one row to ``state`` (see :func:`set_states`)."""
    set_states(conn, [item.id], state, now=now, error=error, attempted=attempted)


def set_states(
    conn: Connection,
    outbox_ids: Sequence[UUID],
    state: OutboxState,
    *,
    now: datetime,
    error: str | None = None,
    attempted: bool = False,
) -> None:
    """Move rows to ``state`` in one update, stamped ``updated_at`` (``delivered_at`` when sent).

    ``attempted`` counts one more delivery attempt; ``error`` becomes ``last_error``.
    """
    values: dict[str, Any] = {"state": state.value, "updated_at": now}
    if attempted:
        values["attempts"] = notification_outbox.c.attempts + 1
    if error is not None:
        values["last_error"] = error
    if state is OutboxState.SENT:
        values["delivered_at"] = now
    conn.execute(
        update(notification_outbox)
        .where(in_values(conn, notification_outbox.c.id, list(outbox_ids)))
        .values(values)
    )


def outbox_counts(conn: Connection) -> dict[str, dict[str, int]]:
    """Rows per channel and state, every combination present (zeros included)."""
    counts = {c.value: {s.value: 0 for s in OutboxState} for c in Channel}
    rows = conn.execute(
        select(notification_outbox.c.channel, notification_outbox.c.state, func.count()).group_by(
            notification_outbox.c.channel, notification_outbox.c.state
        )
    )
    for channel, state, count in rows:
        counts.setdefault(channel, {})[state] = int(count)
    return counts


def requeue_dead(
    conn: Connection, *, now: datetime, channel: Channel | None = None
) -> list[OutboxRef]:
    """Reopen dead rows for delivery: pending again with a fresh attempt budget.

    ``last_error`` is kept for the record.  Rows are stamped ``dispatched_at``
    now and sent after the commit; if that send is lost the relay picks them
    up after its grace period.
    """
    query = select(notification_outbox.c.id, notification_outbox.c.channel).where(
        notification_outbox.c.state == OutboxState.DEAD.value
    )
    if channel is not None:
        query = query.where(notification_outbox.c.channel == channel.value)
    rows = conn.execute(
        query.order_by(notification_outbox.c.updated_at).with_for_update(skip_locked=True)
    ).all()
    refs = [OutboxRef(row.id, Channel(row.channel)) for row in rows]
    if refs:
        conn.execute(
            update(notification_outbox)
            .where(notification_outbox.c.id.in_([r.id for r in refs]))
            .values(state=OutboxState.PENDING.value, attempts=0, updated_at=now, dispatched_at=now)
        )
    dispatch_after_commit(conn, refs)
    return refs
