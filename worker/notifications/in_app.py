"""Delivering outbox rows on the in-app channel: ``notifications`` rows, at most once (SQL).

Idempotent: the rows are locked (``FOR UPDATE``) and each ``notifications``
row is inserted ``ON CONFLICT (outbox_id) DO NOTHING``, so a task delivered
twice, even concurrently, inserts one row.  Nothing here touches
``earned_badges``: a notification failure never alters an award.
"""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime, tzinfo
from typing import Any
from uuid import UUID, uuid4

from sqlalchemy import Connection

from schema.tables import notifications
from worker.db.sql import insert_for
from worker.notifications.items import FINAL_STATES, Delivery, OutboxItem, load_items, set_states
from worker.notifications.texts import RenderedMessage, UnknownKind, render
from worker.notifications.types import Channel, OutboxState


def deliver_in_app(conn: Connection, outbox_id: UUID, *, now: datetime, tz: tzinfo) -> Delivery:
    """Insert the in-app notification of one outbox row, at most once, and mark it sent."""
    return deliver_in_app_batch(conn, [outbox_id], now=now, tz=tz)[outbox_id]


def deliver_in_app_batch(
    conn: Connection, outbox_ids: Collection[UUID], *, now: datetime, tz: tzinfo
) -> dict[UUID, Delivery]:
    """Deliver several in-app outbox rows in the caller's transaction, each at most once.

    A constant number of statements however many rows: one locking read, one
    insert of the ``notifications`` rows (``ON CONFLICT (outbox_id) DO
    NOTHING``), one state update per outcome.  Returns what happened to each id.
    """
    items = load_items(conn, outbox_ids)
    outcomes: dict[UUID, Delivery] = {}
    delivered: list[dict[str, Any]] = []
    dead: dict[str, list[UUID]] = {}
    for outbox_id in outbox_ids:
        item = items.get(outbox_id)
        if outbox_id in outcomes:
            continue  # the same id twice in one batch: delivered once
        if item is None or item.channel is not Channel.IN_APP:
            outcomes[outbox_id] = Delivery.MISSING
        elif item.state in FINAL_STATES:
            outcomes[outbox_id] = Delivery.ALREADY_DONE
        else:
            try:
                message = render(item.kind, item.payload, language=item.language, tz=tz)
            except UnknownKind as exc:
                dead.setdefault(str(exc), []).append(item.id)
                outcomes[outbox_id] = Delivery.DEAD
                continue
            delivered.append(
                {
                    "id": uuid4(),
                    "peer_mentor_id": item.peer_mentor_id,
                    "organisation_id": item.organisation_id,
                    "kind": item.kind,
                    "payload": in_app_payload(item, message),
                    "created_at": now,
                    "outbox_id": item.id,
                }
            )
            outcomes[outbox_id] = Delivery.DELIVERED
    if delivered:
        conn.execute(
            insert_for(conn, notifications).on_conflict_do_nothing(index_elements=["outbox_id"]),
            delivered,
        )
        set_states(
            conn, [d["outbox_id"] for d in delivered], OutboxState.SENT, now=now, attempted=True
        )
    for error, ids in dead.items():
        set_states(conn, ids, OutboxState.DEAD, now=now, error=error, attempted=True)
    return outcomes


def in_app_payload(item: OutboxItem, message: RenderedMessage) -> dict[str, Any]:
    """The ``notifications.payload`` the app reads: the outbox payload plus the texts."""
    return {
        **item.payload,
        "title": message.title,
        "body": message.body,
        "language": message.language,
    }
