"""``ingest``: events/s of the real worker against no-op tasks/s, and publish → commit latency.

1. N events for M mentors are published before the worker starts; the time
   from worker ready to all N committed gives ``events_per_s``.  The worker
   is the ``Procfile`` one: all three queues, so the award notifications
   (``badges.deliver_in_app``/``deliver_push``) that ingestion causes are
   delivered by the same processes meanwhile, as in production.
2. With that worker still running, events are published at half that rate;
   ``p50_ms``/``p99_ms`` are publish → committed (see :mod:`bench.latency`).
3. The same topology (``celery -A bench.celery_app worker`` with the same
   queues and settings) drains N ``bench.noop`` messages carrying the same
   payloads: ``noop_tasks_per_s``.
4. Without ``--quick``: the drain again with a worker consuming only
   ``activity_events`` (``events_per_s_ingest_queue_only``), which separates
   the cost of ingestion from that of delivering its notifications.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Engine, text

from bench.broker import QueueProbe, flush_broker, publish_events, publish_noops
from bench.data import event_stream
from bench.database import prepare, processed_count, reset_activity
from bench.drain import Drain, measure_drain
from bench.latency import Latency, measure_latency
from bench.resources import Environment, check_settings, throwaway_environment
from bench.workers import running_workers

FULL = {"events": 20_000, "mentors": 200, "paced_seconds": 30.0}
QUICK = {"events": 5_000, "mentors": 200, "paced_seconds": 10.0}


def _ingest_and_latency(
    env: Environment, engine: Engine, size: dict[str, float]
) -> tuple[Drain, Latency, str]:
    events, mentors = int(size["events"]), int(size["mentors"])
    publish_events(event_stream(events, mentors=mentors, seed=1))
    with running_workers(env.variables()) as workers:
        drain = measure_drain(
            workers, events, lambda: processed_count(engine), what="ingest", engine=engine
        )
        rate = drain.per_s / 2
        paced = measure_latency(
            engine,
            event_stream(10**9, mentors=mentors, seed=2),
            rate=rate,
            count=max(200, int(rate * size["paced_seconds"])),
        )
        topology = f"1 instance x {len(workers[0].pids()) - 1} pool processes, all queues"
    return drain, paced, topology


def _noop(env: Environment, engine: Engine, events: int, mentors: int) -> Drain:
    flush_broker(env.broker_url)
    publish_noops(event_stream(events, mentors=mentors, seed=3))
    probe = QueueProbe(env.broker_url)
    try:
        with running_workers(env.variables(), app="bench.celery_app") as workers:
            return measure_drain(
                workers, events, lambda: events - probe.outstanding(), what="no-op", engine=engine
            )
    finally:
        probe.close()


def _ingest_queue_only(env: Environment, engine: Engine, events: int, mentors: int) -> Drain:
    reset_activity(engine)
    flush_broker(env.broker_url)
    publish_events(event_stream(events, mentors=mentors, seed=1))
    with running_workers(env.variables(), queues="activity_events") as workers:
        return measure_drain(
            workers,
            events,
            lambda: processed_count(engine),
            what="ingest (activity_events only)",
            engine=engine,
        )


def _count(engine: Engine, table: str) -> int:
    with engine.connect() as conn:
        return int(conn.execute(text(f"SELECT count(*) FROM {table}")).scalar_one())


def run(*, quick: bool) -> dict[str, Any]:
    """Run the scenario on its own database and Redis index."""
    size = QUICK if quick else FULL
    events, mentors = int(size["events"]), int(size["mentors"])
    with throwaway_environment() as env:
        engine = prepare(env.database_url)
        check_settings(env)
        try:
            ingest, paced, topology = _ingest_and_latency(env, engine, size)
            quarantined = _count(engine, "quarantined_events")
            awarded = _count(engine, "earned_badges")
            noop = _noop(env, engine, events, mentors)
            alone = None if quick else _ingest_queue_only(env, engine, events, mentors)
        finally:
            engine.dispose()
    result: dict[str, Any] = {
        "events_per_s": round(ingest.per_s, 1),
        "noop_tasks_per_s": round(noop.per_s, 1),
        "ratio": round(ingest.per_s / noop.per_s, 3),
        "p50_ms": round(paced.p50_ms, 1),
        "p99_ms": round(paced.p99_ms, 1),
        "events": events,
        "mentors": mentors,
        "topology": topology,
        "ingest_seconds": round(ingest.seconds, 2),
        "noop_seconds": round(noop.seconds, 2),
        "paced_rate_per_s": round(paced.rate_per_s, 1),
        "paced_events": paced.events,
        "p90_ms": round(paced.p90_ms, 1),
        "max_ms": round(paced.max_ms, 1),
        "quarantined": quarantined,
        "badges_awarded": awarded,
        "cores_used_ingest": ingest.cpu,
        "cores_used_noop": noop.cpu,
    }
    if alone is not None:
        result["events_per_s_ingest_queue_only"] = round(alone.per_s, 1)
        result["ratio_ingest_queue_only"] = round(alone.per_s / noop.per_s, 3)
        result["cores_used_ingest_queue_only"] = alone.cpu
    return result
