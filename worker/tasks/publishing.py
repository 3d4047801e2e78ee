"""Publishing activity events the way producers do (``send_task`` per the contract)."""

from __future__ import annotations

from collections.abc import Iterable, Sized
from typing import Any

from tqdm import tqdm

from worker.app import app
from worker.model.events import QUEUE, TASK_NAME


def publish(events: Iterable[Any], *, progress: bool = False) -> int:
    """Send each event as a ``badges.ingest_activity`` message; returns how many."""
    total = len(events) if isinstance(events, Sized) else None
    count = 0
    with app.producer_or_acquire() as producer:
        for event in tqdm(
            events, total=total, disable=not progress, unit="event", desc="publishing"
        ):
            app.send_task(TASK_NAME, kwargs={"event": event}, queue=QUEUE, producer=producer)
            count += 1
    return count
