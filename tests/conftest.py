"""Session set-up: a throwaway PostgreSQL database and Redis index for this run.

The environment is set before any test module imports the Celery app, so
the app in this process and the worker processes started by tests talk to
the same throwaway broker and database.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from tests import services

_resources: dict[str, object] = {}


def pytest_configure(config: pytest.Config) -> None:
    if os.environ.get("BADGES_TEST_CHILD"):
        return
    for name in ("DATABASE_URL", "BROKER_URL", "PUSH_GATEWAY_URL", "PUSH_GATEWAY_TOKEN"):
        os.environ.pop(name, None)
    database_url = services.create_database()
    broker_url, index = services.claim_redis_db()
    _resources.update(database_url=database_url, redis_index=index)
    os.environ["DATABASE_URL"] = database_url
    os.environ["BROKER_URL"] = broker_url
    os.environ["BADGES_TEST_CHILD"] = "1"


def pytest_unconfigure(config: pytest.Config) -> None:
    if "database_url" not in _resources:
        return
    from worker.db.engine import dispose_engines

    dispose_engines()
    services.drop_database(str(_resources["database_url"]))
    services.release_redis_db(int(str(_resources["redis_index"])))


@pytest.fixture
def push_enabled(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """This process writes push rows, as a process with a push gateway configured does.

    Only the writing side: nothing listens at the address, and worker
    processes started by the harness get a gateway only when a test passes one.
    """
    from worker.core.settings import get_settings

    monkeypatch.setenv("PUSH_GATEWAY_URL", "http://127.0.0.1:9/not-listening")
    get_settings.cache_clear()
    yield
    monkeypatch.delenv("PUSH_GATEWAY_URL")
    get_settings.cache_clear()
