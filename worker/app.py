"""The Celery application, configured from ``celeryconfig``."""

from __future__ import annotations

from typing import Any

from worker.observability.metrics_env import prepare_multiprocess_dir

# Before anything imports prometheus_client, and before the pool forks.
prepare_multiprocess_dir()

from celery import Celery  # noqa: E402
from celery.signals import worker_process_init  # noqa: E402

app = Celery("badges")
app.config_from_object("celeryconfig")


@worker_process_init.connect
def _fresh_connections(**_: Any) -> None:
    # A forked pool process must not reuse the parent's database sockets.
    from worker.db.engine import dispose_engines

    dispose_engines(close=False)
