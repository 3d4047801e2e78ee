"""Multiprocess metrics are prepared in ``celery worker`` processes only."""

from __future__ import annotations

import pytest

from worker.observability.metrics_env import _is_celery_worker


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["/venv/bin/celery", "-A", "worker", "worker", "-Q", "activity_events"], True),
        (["/lib/python3.11/site-packages/celery/__main__.py", "-A", "worker", "worker"], True),
        (["/venv/bin/celery", "--quiet", "--app=worker", "worker"], True),
        (["/venv/bin/celery", "-A", "worker", "beat"], False),
        (["/venv/bin/celery", "-A", "worker", "inspect", "ping"], False),
        (["/venv/bin/badges", "publish", "events.jsonl"], False),
        (["/venv/bin/uvicorn", "api.app:app"], False),
    ],
)
def test_only_a_celery_worker_process_prepares_metrics(argv: list[str], expected: bool) -> None:
    assert _is_celery_worker(argv) is expected
