"""The Celery application, configured from ``celeryconfig``.

Creating it also installs the sender that dispatches outbox rows after commit
(:func:`worker.notifications.dispatch.use_sender`), so every process that
imports the app (worker, CLI, API) sends delivery tasks.
"""

from __future__ import annotations

from typing import Any

from worker.observability.metrics_env import prepare_multiprocess_dir

# Before anything imports prometheus_client, and before the pool forks.
prepare_multiprocess_dir()

from celery import Celery  # noqa: E402
from celery.signals import worker_process_init  # noqa: E402
from kombu.exceptions import OperationalError as BrokerError  # noqa: E402

from worker.notifications.dispatch import SendFailed, use_sender  # noqa: E402

app = Celery("badges")
app.config_from_object("celeryconfig")


def _send(task_name: str, kwargs: dict[str, Any]) -> None:
    try:
        app.send_task(task_name, kwargs=kwargs)
    except BrokerError as exc:
        raise SendFailed(str(exc)) from exc


use_sender(_send)


@worker_process_init.connect
def _fresh_connections(**_: Any) -> None:
    # A forked pool process must not reuse the parent's database sockets.
    from worker.db.engine import dispose_engines

    dispose_engines(close=False)
