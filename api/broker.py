"""Reachability and queue depth of the Celery broker (Redis, or the embedded transport)."""

from __future__ import annotations

from typing import Any

from kombu.exceptions import ChannelError

from celeryconfig import ACTIVITY_QUEUE, MAINTENANCE_QUEUE, NOTIFICATION_QUEUE

QUEUES = (ACTIVITY_QUEUE, NOTIFICATION_QUEUE, MAINTENANCE_QUEUE)
#: A probe must answer quickly: health checks and scrapes have their own timeouts.
CONNECT_TIMEOUT_S = 2.0


def _connection() -> Any:  # kombu.Connection (kombu is untyped)
    from worker.app import app

    return app.connection_for_read(connect_timeout=CONNECT_TIMEOUT_S)


def ping() -> None:
    """Raise if the broker cannot be reached."""
    with _connection() as conn:
        conn.ensure_connection(max_retries=1, interval_start=0, timeout=CONNECT_TIMEOUT_S)
        _ = conn.default_channel  # opening a channel talks to the server (Redis: PING)


def queue_depths() -> dict[str, int]:
    """Messages waiting per worker queue (a queue never used yet counts 0)."""
    depths: dict[str, int] = {}
    with _connection() as conn:
        conn.ensure_connection(max_retries=1, interval_start=0, timeout=CONNECT_TIMEOUT_S)
        channel = conn.default_channel
        for queue in QUEUES:
            try:
                depths[queue] = int(channel.queue_declare(queue=queue, passive=True).message_count)
            except ChannelError:
                depths[queue] = 0
    return depths
