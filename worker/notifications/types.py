"""The vocabulary of the notification outbox: channels, row states, kinds, row references."""

from __future__ import annotations

from enum import StrEnum
from typing import NamedTuple
from uuid import UUID


class Channel(StrEnum):
    IN_APP = "in_app"
    PUSH = "push"


class OutboxState(StrEnum):
    PENDING = "pending"
    SENT = "sent"
    FAILED = "failed"  # a delivery attempt failed; another will follow
    DEAD = "dead"  # out of attempts, or a permanent error
    SKIPPED = "skipped"  # deliberately not delivered (no gateway, backfill, revoked)


class OutboxRef(NamedTuple):
    """An outbox row to deliver: its id and channel."""

    id: UUID
    channel: Channel


#: Notification kinds (``notification_outbox.kind`` and ``notifications.kind``).
BADGE_EARNED = "badge_earned"
TIER_PROMOTED = "tier_promoted"
