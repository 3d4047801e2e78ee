"""``scale``: the ingest drain with one and with two worker processes.

The keys compare two ``celery worker`` instances with ``--concurrency 1``
each against one such instance: every instance has its own consumer main
process (which does all the message I/O), so this is how a second process
adds capacity.  One instance with two pool processes (``--concurrency 2``,
the ``Procfile`` default on this machine) is measured too and reported as
``one_instance_two_pool_per_s``/``pool_ratio``.  Each run starts from the
same state: activity tables emptied, the same N events published before the
workers start.

On a machine whose cores one instance already nearly fills, ``ratio`` says
more about the machine than about the code, so the CPU each run used is
reported too (:func:`cpu_bound`): the ratio the cores allow, events per
CPU-second with two instances against one, and how often the database
backends waited on a lock while two instances drained.

Two mentor populations are measured.  The keys at the top level are the hot
case (200 mentors: round-robin puts half of all mentors into every batch of
100, so two instances always contend for the same mentors); ``realistic``
holds ``per_core_ratio``/``lock_wait_share_two`` (and the rates) for 10,000
mentors, where two batches in flight rarely share a mentor.
"""

from __future__ import annotations

import os
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
REALISTIC_MENTORS = 10_000


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


def _cores(drain: Drain) -> float:
    """Cores the topology used: worker processes, PostgreSQL backends and Redis."""
    return sum(v for k, v in drain.cpu.items() if k != "other")


def cpu_bound(one: Drain, two: Drain) -> dict[str, Any]:
    """What the CPU allows on this machine, beside the measured ``ratio``.

    * ``cpu_ms_per_event_one``/``_two``: CPU (all processes of the topology)
      per event in each run;
    * ``cpu_ceiling_ratio``: the ratio two instances would reach if each event
      cost what it costs one instance and every core of the machine were
      used: ``cores / cores used by one instance``;
    * ``per_core_ratio``: events per CPU-second with two instances over
      events per CPU-second with one (1.0: the second instance adds no cost
      per event, so no lock convoy or hot row);
    * ``lock_wait_share_two``: share of sampled active database backends that
      waited on a lock while two instances drained.
    """
    cores = os.cpu_count() or 1
    one_cores, two_cores = _cores(one), _cores(two)
    if not one_cores or not two_cores:
        return {}
    return {
        "cpu_ms_per_event_one": round(1000 * one_cores / one.per_s, 3),
        "cpu_ms_per_event_two": round(1000 * two_cores / two.per_s, 3),
        "cpu_ceiling_ratio": round(cores / one_cores, 3),
        "per_core_ratio": round((two.per_s / two_cores) / (one.per_s / one_cores), 3),
        "lock_wait_share_two": two.lock_wait_share,
    }


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
            spread = {"events": size["events"], "mentors": REALISTIC_MENTORS}
            one_spread = _drain(env, engine, instances=1, concurrency=1, **spread)
            two_spread = _drain(env, engine, instances=2, concurrency=1, **spread)
        finally:
            engine.dispose()
    return {
        "one_worker_per_s": round(one.per_s, 1),
        "two_workers_per_s": round(two.per_s, 1),
        "ratio": round(two.per_s / one.per_s, 3),
        **cpu_bound(one, two),
        "keys_measure": "2 instances x --concurrency 1 vs 1 instance x --concurrency 1",
        "one_instance_two_pool_per_s": round(pool.per_s, 1),
        "pool_ratio": round(pool.per_s / one.per_s, 3),
        "events": size["events"],
        "mentors": size["mentors"],
        "cores_used_one_worker": one.cpu,
        "cores_used_two_workers": two.cpu,
        "cores_used_two_pool": pool.cpu,
        "realistic": _realistic(one_spread, two_spread),
    }


def _realistic(one: Drain, two: Drain) -> dict[str, Any]:
    """The realistic case's figures (10,000 mentors), nested under ``realistic``."""
    bound = cpu_bound(one, two)
    return {
        "mentors": REALISTIC_MENTORS,
        "one_worker_per_s": round(one.per_s, 1),
        "two_workers_per_s": round(two.per_s, 1),
        "ratio": round(two.per_s / one.per_s, 3),
        "per_core_ratio": bound.get("per_core_ratio"),
        "lock_wait_share_two": bound.get("lock_wait_share_two"),
        "cpu_ms_per_event_one": bound.get("cpu_ms_per_event_one"),
        "cpu_ms_per_event_two": bound.get("cpu_ms_per_event_two"),
    }
