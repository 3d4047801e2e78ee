"""Real ``celery worker`` subprocesses with the production settings, and their memory.

A worker is started like the ``worker`` line of the ``Procfile``
(``celery -A worker worker -Q activity_events,notifications,maintenance
--loglevel INFO``), with the scenario's ``DATABASE_URL``/``BROKER_URL``, in
its own process group so that stopping it also stops its pool processes.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

from bench.progress import say

ROOT = Path(__file__).resolve().parents[1]
QUEUES = "activity_events,notifications,maintenance"
READY_MARK = b" ready."
START_TIMEOUT_S = 60.0
#: A warm shutdown normally takes about 2 s; see BENCHMARKS.md for the ~32 s ones.
STOP_TIMEOUT_S = 6.0


class WorkerProcess:
    """One ``celery worker`` instance (a consumer main process and its pool)."""

    def __init__(
        self,
        env: dict[str, str],
        *,
        app: str = "worker",
        concurrency: int | None = None,
        queues: str = QUEUES,
        loglevel: str = "INFO",
    ) -> None:
        self.name = f"bench-{uuid.uuid4().hex[:8]}"
        self.log_path = Path(tempfile.gettempdir()) / f"{self.name}.log"
        command = [sys.executable, "-m", "celery", "-A", app, "worker", "-Q", queues,
                   "--loglevel", loglevel, "--hostname", f"{self.name}@%h"]  # fmt: skip
        if concurrency is not None:
            command += ["--concurrency", str(concurrency)]
        self.command = command
        self._log = self.log_path.open("wb")
        self.process = subprocess.Popen(
            command, cwd=ROOT, env={**os.environ, **env}, stdout=self._log,
            stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
        self.ready_at: float | None = None

    @property
    def pid(self) -> int:
        return self.process.pid

    def wait_ready(self, timeout: float = START_TIMEOUT_S) -> float:
        """Block until the worker logged ``ready.``; returns that moment (monotonic)."""
        deadline = time.monotonic() + timeout
        while self.ready_at is None:
            if READY_MARK in self.log_path.read_bytes():
                self.ready_at = time.monotonic()
            elif self.process.poll() is not None:
                raise RuntimeError(f"worker exited early:\n{self.log()[-3000:]}")
            elif time.monotonic() > deadline:
                raise RuntimeError(f"worker not ready after {timeout}s:\n{self.log()[-3000:]}")
            else:
                time.sleep(0.01)
        return self.ready_at

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def pids(self) -> list[int]:
        """The main process followed by its (pool) children."""
        return [self.pid, *children(self.pid)]

    def stop(self, timeout: float = STOP_TIMEOUT_S) -> None:
        """Warm shutdown (SIGTERM), then SIGKILL the whole process group.

        The measurement is over when this is called; a worker still busy
        after ``timeout`` is killed (its unacknowledged messages are flushed
        with the Redis index).
        """
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                say(f"worker {self.name} did not stop within {timeout}s of SIGTERM; killing it")
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)  # leftover pool processes
        if self.process.poll() is None:
            self.process.wait()
        self._log.close()
        self.log_path.unlink(missing_ok=True)


@contextmanager
def running_workers(
    env: dict[str, str], count: int = 1, **options: str | int | None
) -> Iterator[list[WorkerProcess]]:
    """Start ``count`` worker instances at once, wait until all are ready, stop them after."""
    with ExitStack() as stack:
        workers = []
        for _ in range(count):
            worker = WorkerProcess(env, **options)  # type: ignore[arg-type]
            stack.callback(worker.stop)
            workers.append(worker)
        for worker in workers:
            worker.wait_ready()
        yield workers


def children(pid: int) -> list[int]:
    """Direct children of ``pid`` (from /proc; Linux only)."""
    found: list[int] = []
    try:
        for task in os.listdir(f"/proc/{pid}/task"):
            text = Path(f"/proc/{pid}/task/{task}/children").read_text()
            found += [int(p) for p in text.split()]
    except (FileNotFoundError, ProcessLookupError):
        pass
    return found


def rss_mb(pid: int) -> float | None:
    """Resident set size of one process in MiB (``VmRSS``), None if it is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except (FileNotFoundError, ProcessLookupError):
        return None
    return None
