"""``recovery``: SIGKILL a worker holding in-flight messages; how long until another commits them.

Two worker instances (the ``Procfile`` worker, production settings, the
reliable Redis transport) drain a stream of events.  Each round, once the
victim instance holds messages (its consumer's ``held`` hash in Redis is not
empty), the victim and its pool processes are SIGKILLed; the messages it held
at that instant are read from Redis, and the clock runs until every one of
them is committed (its ``processed_events`` row exists) by the other
instance.  ``max_seconds`` is the slowest round: it is bounded by the
dead-consumer timeout (``BROKER_CONSUMER_DEAD_AFTER_S``, 15 s) plus one
heartbeat interval plus the time to process what came back.

Then ``sigterms`` rounds of the same with SIGTERM instead of SIGKILL:
``sigterm_max_seconds`` is the longest warm shutdown (signal to exit), with
the stream still flowing, and every event is still committed once.

Before the rounds, the cost of polling at idle: the CPU share of the two idle
consumer (main) processes and of the Redis server over ``IDLE_SECONDS``,
next to one idle worker on stock kombu's ``BRPOP`` (the no-op app).
"""

from __future__ import annotations

import base64
import json
import os
import signal
import time
from typing import Any

import redis
from sqlalchemy import Engine, text

from bench.broker import publish_events
from bench.cpu import cpu_seconds, processes_named
from bench.data import event_stream
from bench.database import prepare, processed_count
from bench.progress import say
from bench.resources import Environment, check_settings, throwaway_environment
from bench.workers import WorkerProcess

FULL = {"rounds": 6, "events": 3000, "mentors": 200, "sigterms": 8}
QUICK = {"rounds": 3, "events": 1500, "mentors": 200, "sigterms": 3}
IDLE_SECONDS = 10.0
DEADLINE_S = 300.0
HELD_PREFIX = "reliable.held."


def _held_by(client: redis.Redis, pid: int) -> dict[Any, Any]:
    """The messages held by the consumers of the worker whose main process is ``pid``."""
    held: dict[Any, Any] = {}
    for key in client.scan_iter(match=f"{HELD_PREFIX}*:{pid}:*", count=1000):
        tags = list(client.hkeys(key))
        entries = client.hmget("unacked", tags) if tags else []
        held.update({t: e for t, e in zip(tags, entries, strict=True) if e is not None})
    return held


def _event_id(entry: bytes) -> str | None:
    """The event id of an ingest message (None for the notification tasks it also holds)."""
    message = json.loads(entry)[0]
    if message["headers"].get("task") != "badges.ingest_activity":
        return None
    _, kwargs, _ = json.loads(base64.b64decode(message["body"]))
    return str(kwargs["event"]["event_id"])


def _committed(engine: Engine, event_ids: list[str]) -> int:
    with engine.connect() as conn:
        return int(
            conn.execute(
                text("SELECT count(*) FROM processed_events WHERE event_id = ANY(:ids)"),
                {"ids": event_ids},
            ).scalar_one()
        )


def _wait(probe: Any, what: str, timeout: float = DEADLINE_S) -> None:
    deadline = time.monotonic() + timeout
    while not probe():
        if time.monotonic() > deadline:
            raise RuntimeError(f"gave up waiting for {what}")
        time.sleep(0.02)


def _idle_share(pids: list[int], seconds: float) -> float:
    before = sum(cpu_seconds(p) for p in pids)
    time.sleep(seconds)
    return (sum(cpu_seconds(p) for p in pids) - before) / seconds


def _idle_costs(env: Environment, workers: list[WorkerProcess]) -> dict[str, float]:
    redis_pids = processes_named("redis-server")
    time.sleep(2)  # let start-up work settle
    ours = _idle_share([w.pid for w in workers], IDLE_SECONDS) / len(workers)
    redis_ours = _idle_share(redis_pids, IDLE_SECONDS)
    stock = WorkerProcess(env.variables(), app="bench.celery_app")
    try:
        stock.wait_ready()
        time.sleep(2)
        stock_share = _idle_share([stock.pid], IDLE_SECONDS)
    finally:
        stock.stop()
    return {
        "idle_consumer_cpu_percent": round(100 * ours, 2),
        "idle_consumer_cpu_percent_stock_brpop": round(100 * stock_share, 2),
        "idle_redis_cpu_percent": round(100 * redis_ours, 2),
    }


def _publish_until_held(
    client: redis.Redis, engine: Engine, victim: WorkerProcess, n: int, mentors: int, seed: int
) -> int:
    """Publish a round's events; return once the victim holds some. The processed count before."""
    before = processed_count(engine)
    publish_events(event_stream(n, mentors=mentors, seed=seed))
    _wait(lambda: len(_held_by(client, victim.pid)) > 0 and processed_count(engine) > before,
          "the victim to hold messages")  # fmt: skip
    return before


def _round(
    env: Environment, engine: Engine, victim: WorkerProcess, n: int, mentors: int, seed: int
) -> tuple[float, int]:
    client = redis.Redis.from_url(env.broker_url)
    try:
        before = _publish_until_held(client, engine, victim, n, mentors, seed)
        os.killpg(victim.pid, signal.SIGKILL)
        killed_at = time.monotonic()
        victim.process.wait()
        held = [i for e in _held_by(client, victim.pid).values() if (i := _event_id(e))]
        _wait(lambda: _committed(engine, held) == len(held), "the held messages to be committed")
        seconds = time.monotonic() - killed_at
        _wait(lambda: processed_count(engine) == before + n, "the round's events")
        return seconds, len(held)
    finally:
        client.close()


def _sigterm_round(
    env: Environment, engine: Engine, victim: WorkerProcess, n: int, mentors: int, seed: int
) -> float:
    client = redis.Redis.from_url(env.broker_url)
    try:
        before = _publish_until_held(client, engine, victim, n, mentors, seed)
        victim.process.send_signal(signal.SIGTERM)
        signalled_at = time.monotonic()
        victim.process.wait(timeout=120)
        seconds = time.monotonic() - signalled_at
        _wait(lambda: processed_count(engine) == before + n, "the round's events")
        return seconds
    finally:
        client.close()


def run(*, quick: bool) -> dict[str, Any]:
    """Run the scenario on its own database and Redis index."""
    size = QUICK if quick else FULL
    with throwaway_environment() as env:
        engine = prepare(env.database_url)
        check_settings(env)
        workers = [WorkerProcess(env.variables()) for _ in range(2)]
        try:
            for w in workers:
                w.wait_ready()
            idle = _idle_costs(env, workers)
            rounds: list[tuple[float, int]] = []
            for i in range(size["rounds"]):
                seconds, held = _round(
                    env, engine, workers[0], size["events"], size["mentors"], 20 + i
                )
                say(f"round {i + 1}: {held} held messages committed {seconds:.1f} s after the kill")
                rounds.append((seconds, held))
                workers[0].stop()
                workers[0] = WorkerProcess(env.variables())
                workers[0].wait_ready()
            stops: list[float] = []
            for i in range(size["sigterms"]):
                seconds = _sigterm_round(
                    env, engine, workers[0], size["events"], size["mentors"], 40 + i
                )
                say(f"SIGTERM {i + 1}: exited {seconds:.1f} s after the signal")
                stops.append(seconds)
                workers[0].stop()
                workers[0] = WorkerProcess(env.variables())
                workers[0].wait_ready()
        finally:
            for w in workers:
                w.stop()
            engine.dispose()
    from worker.core.settings import get_settings

    settings = get_settings()
    return {
        "max_seconds": round(max(s for s, _ in rounds), 2),
        "mean_seconds": round(sum(s for s, _ in rounds) / len(rounds), 2),
        "rounds": len(rounds),
        "held_per_kill": round(sum(h for _, h in rounds) / len(rounds), 1),
        "events_per_round": size["events"],
        "sigterm_max_seconds": round(max(stops), 2),
        "sigterm_median_seconds": round(sorted(stops)[len(stops) // 2], 2),
        "sigterms": len(stops),
        "dead_after_s": settings.broker_consumer_dead_after_s,
        "heartbeat_s": settings.broker_consumer_heartbeat_s,
        "visibility_timeout_s": settings.broker_visibility_timeout_s,
        **idle,
    }
