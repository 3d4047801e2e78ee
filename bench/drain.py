"""Throughput of workers draining a backlog that was published before they started."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from sqlalchemy import Engine, text

from bench.cpu import CpuWindow
from bench.progress import say
from bench.workers import WorkerProcess

POLL_S = 0.05
#: Give up when nothing was finished for this long (a hang, not a slow machine).
STALL_S = 60.0


@dataclass(frozen=True)
class Drain:
    """``total`` messages; ``done_at_start`` of them were finished when timing began."""

    total: int
    done_at_start: int
    seconds: float
    #: Share of one core per process group over the window (see bench.cpu).
    cpu: dict[str, float] = field(default_factory=dict)
    #: Of the samples of active database backends taken while draining, the
    #: share waiting for a lock (row or advisory); None when not sampled.
    lock_wait_share: float | None = None

    @property
    def per_s(self) -> float:
        return (self.total - self.done_at_start) / self.seconds


def measure_drain(
    workers: list[WorkerProcess],
    total: int,
    done: Callable[[], int],
    *,
    what: str,
    engine: Engine | None = None,
) -> Drain:
    """Time from the moment every worker is ready until ``done() == total``.

    Work finished before the last worker became ready (a second instance
    starting a little later) is subtracted, so the rate is that of the whole
    topology.  ``done`` is polled every :data:`POLL_S`.  With ``engine``, the
    CPU used by each process group over the window is recorded too.
    """
    start = max(w.wait_ready() for w in workers)
    window = CpuWindow(workers, engine) if engine is not None else None
    locks = _LockSampler(engine) if engine is not None else None
    if window is not None:
        window.start()
    done_at_start = done()
    last_report = last_progress = start
    previous = done_at_start
    while True:
        finished = done()
        now = time.monotonic()
        if finished >= total:
            break
        for worker in workers:
            if worker.process.poll() is not None:
                raise RuntimeError(f"worker died while draining:\n{worker.log()[-3000:]}")
        if finished != previous:
            previous, last_progress = finished, now
        elif now - last_progress > STALL_S:
            raise RuntimeError(f"{what}: stuck at {finished}/{total} for {STALL_S:.0f}s")
        if locks is not None:
            locks.sample()
        if now - last_report > 5:
            say(f"{what}: {finished}/{total}")
            last_report = now
        time.sleep(POLL_S)
    seconds = now - start
    cpu = window.stop(seconds) if window is not None else {}
    result = Drain(
        total=total,
        done_at_start=done_at_start,
        seconds=seconds,
        cpu=cpu,
        lock_wait_share=None if locks is None else locks.share(),
    )
    say(
        f"{what}: {total} in {seconds:.2f}s -> {result.per_s:.0f}/s; cores used {cpu}; "
        f"lock waits {result.lock_wait_share}"
    )
    return result


class _LockSampler:
    """Counts, at every poll, the scenario database's active backends and those waiting on a lock.

    A lock convoy (every batch queueing behind the same mentors' advisory
    locks or rows) shows as a large share of ``Lock`` waits.
    """

    _QUERY = text(
        "SELECT count(*), count(*) FILTER (WHERE wait_event_type = 'Lock') "
        "FROM pg_stat_activity WHERE datname = current_database() "
        "AND state = 'active' AND pid <> pg_backend_pid()"
    )

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self.active = self.waiting = 0

    def sample(self) -> None:
        with self._engine.connect() as conn:
            active, waiting = conn.execute(self._QUERY).one()
        self.active += int(active)
        self.waiting += int(waiting)

    def share(self) -> float | None:
        return round(self.waiting / self.active, 3) if self.active else None
