"""Publishing messages and reading queue depths on the scenario's Redis index.

Events go through ``worker.tasks.publishing.publish``: ``send_task``
``badges.ingest_activity`` on ``activity_events`` with ``kwargs={"event": …}``,
exactly as producers do (README, *The event contract*).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import redis

from bench.progress import say

#: kombu's Redis transport keeps delivered-but-unacknowledged messages here.
UNACKED_HASH = "unacked"


def publish_events(events: Iterable[dict[str, Any]]) -> int:
    """Publish events per the contract; returns how many."""
    from worker.tasks.publishing import publish

    batch = list(events)
    say(f"publishing {len(batch)} events")
    return publish(batch)


def publish_noops(payloads: Iterable[dict[str, Any]]) -> int:
    """Publish one ``bench.noop`` message per payload, on the ingestion queue."""
    from bench.celery_app import NOOP_TASK
    from worker.app import app
    from worker.model.events import QUEUE

    batch = list(payloads)
    say(f"publishing {len(batch)} no-op tasks")
    with app.producer_or_acquire() as producer:
        for payload in batch:
            app.send_task(NOOP_TASK, kwargs={"event": payload}, queue=QUEUE, producer=producer)
    return len(batch)


def flush_broker(broker_url: str) -> None:
    """Empty the scenario's Redis index between phases.

    What a stopped worker leaves behind (undelivered notification tasks,
    messages it held unacknowledged) must not be consumed by, or counted
    against, the next phase.
    """
    client = redis.Redis.from_url(broker_url)
    try:
        client.flushdb()
    finally:
        client.close()


class QueueProbe:
    """Messages not yet acknowledged: waiting in the queue plus delivered-unacked."""

    def __init__(self, broker_url: str, queue: str = "activity_events") -> None:
        self.client = redis.Redis.from_url(broker_url)
        self.queue = queue

    def outstanding(self) -> int:
        pipe = self.client.pipeline(transaction=False)
        pipe.llen(self.queue)
        pipe.hlen(UNACKED_HASH)
        waiting, unacked = pipe.execute()
        return int(waiting) + int(unacked)

    def close(self) -> None:
        self.client.close()
