"""``scale``: the ingest drain with one and with two worker processes.

The keys compare two ``celery worker`` instances with ``--concurrency 1``
each against one such instance: every instance has its own consumer main
process (which does all the message I/O), so this is how a second process
adds capacity.  One instance with two pool processes (``--concurrency 2``,
the ``Procfile`` default on this machine) is measured too and reported as
``one_instance_two_pool_per_s``/``pool_ratio``.  Each run starts from the
same state: activity tables emptied, the same N events published before the
workers start.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Engine

from bench.broker import flush_broker, publish_events
from bench.data import event_stream
from bench.database import prepare, processed_count, reset_activity
from bench.drain import Drain, measure_drain
from bench.progress import say
from bench.resources import Environment, check_settings, throwaway_environment
from bench.workers import running_workers

FULL = {"events": 20_000, "mentors": 200}
QUICK = {"events": 5_000, "mentors": 200}


def _drain(
    env: Environment, engine: Engine, *, instances: int, concurrency: int, events: int, mentors: int
) -> Drain:
    reset_activity(engine)
    flush_broker(env.broker_url)
    publish_events(event_stream(events, mentors=mentors, seed=1))
    say(f"{instances} instance(s) x --concurrency {concurrency}")
    with running_workers(env.variables(), instances, concurrency=concurrency) as workers:
        return measure_drain(
            workers,
            events,
            lambda: processed_count(engine),
            what=f"{instances}x{concurrency}",
            engine=engine,
        )


def run(*, quick: bool) -> dict[str, Any]:
    """Run the scenario on its own database and Redis index."""
    size = QUICK if quick else FULL
    with throwaway_environment() as env:
        engine = prepare(env.database_url)
        check_settings(env)
        try:
            common = {"events": size["events"], "mentors": size["mentors"]}
            one = _drain(env, engine, instances=1, concurrency=1, **common)
            two = _drain(env, engine, instances=2, concurrency=1, **common)
            pool = _drain(env, engine, instances=1, concurrency=2, **common)
        finally:
            engine.dispose()
    return {
        "one_worker_per_s": round(one.per_s, 1),
        "two_workers_per_s": round(two.per_s, 1),
        "ratio": round(two.per_s / one.per_s, 3),
        "keys_measure": "2 instances x --concurrency 1 vs 1 instance x --concurrency 1",
        "one_instance_two_pool_per_s": round(pool.per_s, 1),
        "pool_ratio": round(pool.per_s / one.per_s, 3),
        "events": size["events"],
        "mentors": size["mentors"],
        "cores_used_one_worker": one.cpu,
        "cores_used_two_workers": two.cpu,
        "cores_used_two_pool": pool.cpu,
    }
