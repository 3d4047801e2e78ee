"""``memory``: worker RSS over a long stream of events.

N events (for many mentors) are published before the worker starts; the
production worker (one instance, its default pool) then works through them
while the resident set size (``VmRSS``) of its main process and of each pool
process is sampled every :data:`SAMPLE_S`.  ``rss_start_mb`` is the total
after warm-up (the first :data:`WARMUP_SHARE` of the events committed),
``rss_end_mb`` the total when the last event committed, ``rss_max_mb`` the
largest single process seen at any time.
"""

from __future__ import annotations

import time
from typing import Any

from bench.broker import publish_events
from bench.data import event_stream
from bench.database import prepare, processed_count
from bench.progress import say
from bench.resources import check_settings, throwaway_environment
from bench.workers import WorkerProcess, rss_mb, running_workers

FULL = {"events": 100_000, "mentors": 5_000}
QUICK = {"events": 8_000, "mentors": 2_000}
SAMPLE_S = 0.5
WARMUP_SHARE = 0.1
TIMEOUT_S = 1800.0


def _sample(worker: WorkerProcess) -> dict[int, float]:
    """RSS per pid (MiB) of the worker's main and pool processes."""
    found = {}
    for pid in worker.pids():
        value = rss_mb(pid)
        if value is not None:
            found[pid] = value
    return found


def run(*, quick: bool) -> dict[str, Any]:
    """Run the scenario on its own database and Redis index."""
    size = QUICK if quick else FULL
    events, mentors = size["events"], size["mentors"]
    with throwaway_environment() as env:
        engine = prepare(env.database_url)
        check_settings(env)
        try:
            publish_events(event_stream(events, mentors=mentors, seed=4))
            with running_workers(env.variables()) as (worker,):
                main_pid = worker.pid
                start_sample: dict[int, float] | None = None
                largest: dict[int, float] = {}
                deadline = time.monotonic() + TIMEOUT_S
                last_report = time.monotonic()
                while True:
                    done = processed_count(engine)
                    sample = _sample(worker)
                    for pid, value in sample.items():
                        largest[pid] = max(largest.get(pid, 0.0), value)
                    if start_sample is None and done >= WARMUP_SHARE * events:
                        start_sample = sample
                        say(f"after warm-up ({done} events): {_total(sample):.1f} MiB")
                    if done >= events:
                        end_sample = sample
                        break
                    if worker.process.poll() is not None:
                        raise RuntimeError(f"worker died:\n{worker.log()[-3000:]}")
                    if time.monotonic() > deadline:
                        raise RuntimeError(f"only {done}/{events} events after {TIMEOUT_S}s")
                    if time.monotonic() - last_report > 10:
                        say(f"{done}/{events} events, {_total(sample):.1f} MiB")
                        last_report = time.monotonic()
                    time.sleep(SAMPLE_S)
        finally:
            engine.dispose()
    assert start_sample is not None
    return {
        "events": events,
        "rss_start_mb": round(_total(start_sample), 1),
        "rss_end_mb": round(_total(end_sample), 1),
        "rss_max_mb": round(max(largest.values()), 1),
        "growth_percent": round(100 * (_total(end_sample) / _total(start_sample) - 1), 1),
        "mentors": mentors,
        "processes": len(end_sample),
        "main_start_mb": round(start_sample.get(main_pid, 0.0), 1),
        "main_end_mb": round(end_sample.get(main_pid, 0.0), 1),
        "pool_end_mb": [round(v, 1) for pid, v in sorted(end_sample.items()) if pid != main_pid],
    }


def _total(sample: dict[int, float]) -> float:
    return sum(sample.values())
