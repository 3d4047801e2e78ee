"""The production Celery app plus one bench-only task, ``bench.noop``.

Start a worker with ``celery -A bench.celery_app worker …``: the configuration
is exactly ``celeryconfig`` (this module changes none of it); the no-op task
measures what Celery alone costs per message on the same worker topology.
"""

from __future__ import annotations

from typing import Any

from worker.app import app

NOOP_TASK = "bench.noop"


@app.task(name=NOOP_TASK)  # type: ignore[untyped-decorator]
def noop(**_: Any) -> None:
    """Accept a message and do nothing (the payload is decoded, then ignored)."""


__all__ = ["NOOP_TASK", "app", "noop"]
