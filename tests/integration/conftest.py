"""Fixtures on the real PostgreSQL, Redis and Celery worker processes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Connection, Engine, text

from schema.migrate import upgrade
from schema.tables import metadata
from worker.clock import SystemClock
from worker.configuration import apply_configuration
from worker.db import get_engine, make_engine, unit_of_work
from worker.definitions import validate_configuration

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


def apply(engine_or_conn: Engine | Connection, config: dict[str, Any]) -> None:
    parsed = validate_configuration(config)
    if isinstance(engine_or_conn, Connection):
        apply_configuration(engine_or_conn, parsed, SystemClock())
        return
    with unit_of_work(engine_or_conn) as c:
        apply_configuration(c, parsed, SystemClock())


def organisation(org: uuid.UUID, **extra: Any) -> dict[str, Any]:
    return {"id": str(org), "name": f"Org {str(org)[:8]}", **extra}


class WorkerProcess:
    """A real ``celery worker`` subprocess on the run's Redis and PostgreSQL."""

    def __init__(
        self,
        *,
        concurrency: int = 2,
        queues: str = "activity_events,notifications,maintenance",
        env: dict[str, str] | None = None,
        name: str | None = None,
        wait: bool = True,
    ) -> None:
        self.name = name or f"test-{uuid.uuid4().hex[:8]}"
        self.log_path = Path(os.environ.get("TMPDIR", "/tmp")) / f"{self.name}.log"
        command = [
            sys.executable, "-m", "celery", "-A", "worker", "worker",
            "-Q", queues, "--concurrency", str(concurrency), "--loglevel", "INFO",
            "--without-gossip", "--without-mingle", "--hostname", f"{self.name}@%h",
        ]  # fmt: skip
        self._log = self.log_path.open("wb")
        # Its own process group, so kill() takes the pool processes down with it.
        self.process = subprocess.Popen(
            command, cwd=ROOT, env={**os.environ, **(env or {})}, stdout=self._log,
            stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
        if wait:
            self._wait_ready()

    def ready(self) -> bool:
        """Started and consuming (for callers that did not wait)."""
        return self.process.poll() is None and b"ready." in self.log_path.read_bytes()

    def _wait_ready(self) -> None:
        from tests.helpers import wait_for

        wait_for(
            lambda: self.process.poll() is not None or b"ready." in self.log_path.read_bytes(),
            until=bool,
            timeout=60,
            what=f"worker {self.name} to start",
        )
        if self.process.poll() is not None:
            raise RuntimeError(f"worker exited early:\n{self.log()}")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._log.close()

    def kill(self) -> None:
        """SIGKILL the worker and its pool processes: nothing gets to clean up."""
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait()
        self._log.close()


@pytest.fixture(scope="session")
def worker(engine: Engine) -> Iterator[WorkerProcess]:
    """One real worker for the session (prefork, two processes)."""
    process = WorkerProcess()
    yield process
    process.stop()
