"""``dispatch_outbox``: one delivery message per channel and batch; refused batches left to the relay."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import pytest
from kombu.exceptions import OperationalError as BrokerError
from sqlalchemy import Engine, select

from schema.tables import notification_outbox
from tests.integration.harness import apply, organisation
from worker.app import app
from worker.notifications.dispatch import DISPATCH_BATCH, dispatch_outbox
from worker.notifications.outbox import Notification, write_outbox
from worker.notifications.types import TIER_PROMOTED, Channel, OutboxRef

NOW = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)

# Both channels are dispatched: this process writes push rows.
pytestmark = pytest.mark.usefixtures("push_enabled")


def pending_refs(engine: Engine, count: int) -> list[OutboxRef]:
    org = uuid.uuid4()
    with engine.begin() as c:
        apply(c, {"organisations": [organisation(org)]})
        return write_outbox(
            c,
            [
                Notification(TIER_PROMOTED, f"dispatch:{org}:{i}", org, uuid.uuid4(), {"n": i})
                for i in range(count)
            ],
            now=NOW,
        )


def dispatched_ids(engine: Engine, refs: list[OutboxRef]) -> set[uuid.UUID]:
    with engine.connect() as c:
        rows = c.execute(
            select(notification_outbox.c.id).where(
                notification_outbox.c.id.in_([r.id for r in refs]),
                notification_outbox.c.dispatched_at.is_not(None),
            )
        )
        return {row.id for row in rows}


def test_refs_go_out_in_one_message_per_channel_and_batch(
    clean_db: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    refs = pending_refs(clean_db, DISPATCH_BATCH + 7)
    sent: list[tuple[str, list[str]]] = []
    monkeypatch.setattr(
        app, "send_task", lambda name, kwargs: sent.append((name, kwargs["outbox_ids"]))
    )

    dispatch_outbox(refs)

    assert [(name, len(ids)) for name, ids in sent] == [
        ("badges.deliver_in_app", DISPATCH_BATCH),
        ("badges.deliver_in_app", 7),
        ("badges.deliver_push", DISPATCH_BATCH),
        ("badges.deliver_push", 7),
    ]
    by_channel = {
        channel: sorted(str(r.id) for r in refs if r.channel is channel) for channel in Channel
    }
    assert sorted(sent[0][1] + sent[1][1]) == by_channel[Channel.IN_APP]
    assert sorted(sent[2][1] + sent[3][1]) == by_channel[Channel.PUSH]
    assert dispatched_ids(clean_db, refs) == {r.id for r in refs}


def test_a_batch_the_broker_refused_stays_undispatched_for_the_relay(
    clean_db: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    refs = pending_refs(clean_db, 3)

    def push_broker_down(name: str, kwargs: dict[str, Any]) -> None:
        if name == "badges.deliver_push":
            raise BrokerError("connection refused")

    monkeypatch.setattr(app, "send_task", push_broker_down)

    dispatch_outbox(refs)

    assert dispatched_ids(clean_db, refs) == {r.id for r in refs if r.channel is Channel.IN_APP}
