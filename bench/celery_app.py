"""The production Celery app plus one bench-only task, ``bench.noop``.

Start a worker with ``celery -A bench.celery_app worker …``: the configuration
is ``celeryconfig`` except the broker transport, which stays stock kombu's
Redis transport (``BRPOP``): the no-op task measures what plain Celery costs
per message on the same worker topology, the anchor the ingest ratio is
measured against.
"""

from __future__ import annotations

from typing import Any

from worker.app import app

if str(app.conf.broker_url).startswith(("redis://", "rediss://")):
    app.conf.broker_transport = "redis"

NOOP_TASK = "bench.noop"


@app.task(name=NOOP_TASK)  # type: ignore[untyped-decorator]
def noop(**_: Any) -> None:
    """Accept a message and do nothing (the payload is decoded, then ignored)."""


__all__ = ["NOOP_TASK", "app", "noop"]
