"""CPU time per process group during a measured window (from /proc; Linux only).

Where the two cores go while the workers drain: the worker's main (consumer)
process, its pool processes, the PostgreSQL backends serving this database
and the Redis server.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import Engine, text

from bench.workers import WorkerProcess

_TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of one process so far (0 if it is gone)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return 0.0
    fields = stat.rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _TICKS


def processes_named(name: str) -> list[int]:
    """Pids whose command name is ``name`` (read-only look at /proc)."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                if Path(f"/proc/{entry}/comm").read_text().strip() == name:
                    found.append(int(entry))
            except OSError:
                continue
    return found


def database_backends(engine: Engine) -> list[int]:
    """Backend pids connected to this engine's database (other than the asking one)."""
    with engine.connect() as conn:
        return [
            int(p)
            for p in conn.execute(
                text(
                    "SELECT pid FROM pg_stat_activity "
                    "WHERE datname = current_database() AND pid <> pg_backend_pid()"
                )
            ).scalars()
        ]


@dataclass
class CpuWindow:
    """Take :meth:`start` and :meth:`stop` around a measured window."""

    workers: list[WorkerProcess]
    engine: Engine

    def _groups(self) -> dict[str, list[int]]:
        return {
            "worker_main": [w.pid for w in self.workers],
            "worker_pool": [c for w in self.workers for c in w.pids()[1:]],
            "postgres": database_backends(self.engine),
            "redis": processes_named("redis-server"),
        }

    def start(self) -> None:
        self._before = {pid: cpu_seconds(pid) for pids in self._groups().values() for pid in pids}
        self._machine_before = machine_busy_seconds()

    def stop(self, seconds: float) -> dict[str, float]:
        """Share of one core used by each group over ``seconds`` (1.0 = one full core).

        ``other`` is everything else that ran on the machine meanwhile (other
        users' work, the benchmark process itself): a noisy neighbour shows here.
        """
        used = {group: _used(pids, self._before) for group, pids in self._groups().items()}
        machine = machine_busy_seconds() - self._machine_before
        used["other"] = max(0.0, machine - sum(used.values()))
        return {group: round(value / seconds, 2) for group, value in used.items()}


def machine_busy_seconds() -> float:
    """CPU time spent on all cores, not idle or waiting for I/O (from /proc/stat)."""
    fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(f) for f in fields[:8])
    return (user + nice + system + irq + softirq + steal) / _TICKS


def _used(pids: Iterable[int], before: dict[int, float]) -> float:
    return sum(cpu_seconds(pid) - before.get(pid, 0.0) for pid in pids)
