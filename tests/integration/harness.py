"""What integration tests share besides fixtures: configuration helpers and real worker processes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, func, select

from schema.tables import mentor_activity_counts, processed_events
from tests.helpers import stop_process, wait_for
from worker.configuration.apply import apply_configuration
from worker.configuration.schema import validate_configuration
from worker.core.clock import SystemClock
from worker.core.models import batches
from worker.db.unit_of_work import unit_of_work

ROOT = Path(__file__).resolve().parents[2]


def apply(engine_or_conn: Engine | Connection, config: dict[str, Any]) -> None:
    parsed = validate_configuration(config)
    if isinstance(engine_or_conn, Connection):
        apply_configuration(engine_or_conn, parsed, SystemClock())
        return
    with unit_of_work(engine_or_conn) as c:
        apply_configuration(c, parsed, SystemClock())


def organisation(org: uuid.UUID, **extra: Any) -> dict[str, Any]:
    return {"id": str(org), "name": f"Org {str(org)[:8]}", **extra}


def processed_count(engine: Engine, event_ids: Iterable[str | uuid.UUID]) -> int:
    """How many of these events the pipeline has recorded as processed."""
    ids = sorted({uuid.UUID(str(e)) for e in event_ids})
    total = 0
    with engine.connect() as c:
        for batch in batches(ids, 5000):
            total += c.execute(
                select(func.count())
                .select_from(processed_events)
                .where(processed_events.c.event_id.in_(batch))
            ).scalar_one()
    return int(total)


def lifetime_total(engine: Engine, *mentors: uuid.UUID) -> int:
    """The mentors' lifetime activity count, all types together."""
    t = mentor_activity_counts.c
    with engine.connect() as c:
        return int(
            c.execute(
                select(func.coalesce(func.sum(t.activity_count), 0)).where(
                    t.peer_mentor_id.in_(mentors)
                )
            ).scalar_one()
        )


class CeleryProcess:
    """A real ``celery`` subprocess in its own process group, its output in a log file."""

    def __init__(self, arguments: list[str], *, log_path: Path, env: dict[str, str] | None) -> None:
        self.log_path = log_path
        self._log = self.log_path.open("wb")
        # The push gateway only when the test gives it: a test that enables the
        # push channel in its own process (``push_enabled``) does not pass it on.
        inherited = {k: v for k, v in os.environ.items() if not k.startswith("PUSH_GATEWAY_")}
        # Its own process group, so kill() takes the pool processes down with it.
        self.process = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "worker", *arguments],
            cwd=ROOT, env={**inherited, **(env or {})}, stdout=self._log,
            stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self) -> None:
        """SIGTERM (a warm shutdown), SIGKILL after 30 s."""
        stop_process(self.process)
        self._log.close()

    def kill(self) -> None:
        """SIGKILL the process and its children: nothing gets to clean up."""
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait()
        self._log.close()


class WorkerProcess(CeleryProcess):
    """A real ``celery worker`` on the run's Redis and PostgreSQL, started and ready."""

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
        super().__init__(
            [
                "worker",
                "-Q",
                queues,
                "--concurrency",
                str(concurrency),
                "--loglevel",
                "INFO",
                "--without-gossip",
                "--without-mingle",
                "--hostname",
                f"{self.name}@%h",
            ],
            log_path=Path(os.environ.get("TMPDIR", "/tmp")) / f"{self.name}.log",
            env=env,
        )
        if wait:
            self._wait_ready()

    def ready(self) -> bool:
        """Started and consuming (for callers that did not wait)."""
        return self.process.poll() is None and b"ready." in self.log_path.read_bytes()

    def _wait_ready(self) -> None:
        wait_for(
            lambda: self.process.poll() is not None or b"ready." in self.log_path.read_bytes(),
            until=bool,
            timeout=60,
            what=f"worker {self.name} to start",
        )
        if self.process.poll() is not None:
            raise RuntimeError(f"worker exited early:\n{self.log()}")


class BeatProcess(CeleryProcess):
    """A real ``celery beat`` with its own schedule file in ``folder``."""

    def __init__(self, folder: Path, name: str, env: dict[str, str]) -> None:
        super().__init__(
            [
                "beat",
                "--loglevel",
                "INFO",
                "--schedule",
                str(folder / f"{name}-schedule"),
                "--pidfile",
                str(folder / f"{name}.pid"),
            ],
            log_path=folder / f"{name}.log",
            env=env,
        )
