"""Fixtures on the real PostgreSQL, Redis and Celery worker processes (helpers: ``harness``)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Connection, Engine, text

from schema.migrate import upgrade
from schema.tables import metadata
from tests import services
from tests.integration.harness import WorkerProcess
from tests.integration.push_gateway import Gateway
from worker.db.engine import get_engine, make_engine

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def engine() -> Engine:
    engine = get_engine()
    assert engine.dialect.name == "postgresql", "integration tests run on PostgreSQL"
    upgrade(engine)
    return engine


@pytest.fixture
def sqlite_engine(tmp_path: Path) -> Iterator[Engine]:
    """A migrated SQLite database of its own (the embedded default's dialect)."""
    engine = make_engine(f"sqlite:///{tmp_path / 'badges.sqlite3'}")
    upgrade(engine)
    yield engine
    engine.dispose()


@pytest.fixture
def conn(engine: Engine) -> Iterator[Connection]:
    """A connection inside a transaction that is rolled back after the test."""
    with engine.connect() as connection:
        transaction = connection.begin()
        try:
            yield connection
        finally:
            transaction.rollback()


@pytest.fixture
def clean_db(engine: Engine) -> Iterator[Engine]:
    """For tests that must commit (several processes): empty every table afterwards."""
    yield engine
    names = ", ".join(t.name for t in metadata.sorted_tables)
    with engine.begin() as c:
        c.execute(text(f"TRUNCATE {names}"))


@pytest.fixture(scope="session")
def worker(engine: Engine) -> Iterator[WorkerProcess]:
    """One real worker for the session (prefork, two processes)."""
    process = WorkerProcess()
    yield process
    process.stop()


@pytest.fixture(scope="module")
def gateway() -> Iterator[Gateway]:
    """The scripted push gateway, one per test module."""
    server = Gateway()
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def broker_url() -> Iterator[str]:
    """A Redis database index of the test module's own (its own worker, its own messages)."""
    url, index = services.claim_redis_db()
    yield url
    services.release_redis_db(index)
