"""Publish → committed latency at a fixed publishing rate.

A publisher thread sends events at ``rate`` per second (event *i* is due at
``start + i / rate``) and notes the wall-clock time just before each
``send_task``.  A watcher polls PostgreSQL every :data:`POLL_S` for the
published-but-unseen event ids (primary-key lookups in ``processed_events``,
whose row is written in the same transaction as the event's effects).  An
event found by a query is stamped with the time that query *started*: its
transaction had committed by then, and not before the previous query started,
so the figure overstates the true latency by at most one polling interval.
"""

from __future__ import annotations

import statistics
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine, text

from bench.progress import say

POLL_S = 0.02
SETTLE_TIMEOUT_S = 120.0


@dataclass(frozen=True)
class Latency:
    events: int
    rate_per_s: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float


def percentile(values: list[float], fraction: float) -> float:
    """Nearest-rank percentile (``fraction`` in (0, 1])."""
    ordered = sorted(values)
    rank = max(1, min(len(ordered), int(-(-fraction * len(ordered) // 1))))
    return ordered[rank - 1]


def measure_latency(
    engine: Engine, events: Iterator[dict[str, Any]], *, rate: float, count: int
) -> Latency:
    """Publish ``count`` events at ``rate``/s to running workers; latency percentiles."""
    from worker.app import app
    from worker.model.events import QUEUE, TASK_NAME

    published: dict[uuid.UUID, float] = {}
    committed: dict[uuid.UUID, float] = {}
    lock = threading.Lock()
    finished_publishing = threading.Event()
    errors: list[BaseException] = []

    def publisher() -> None:
        try:
            with app.producer_or_acquire() as producer:
                start = time.monotonic()
                for i, event in zip(range(count), events, strict=False):
                    delay = start + i / rate - time.monotonic()
                    if delay > 0:
                        time.sleep(delay)
                    with lock:
                        published[uuid.UUID(event["event_id"])] = time.time()
                    app.send_task(
                        TASK_NAME, kwargs={"event": event}, queue=QUEUE, producer=producer
                    )
        except BaseException as exc:  # reported by the caller
            errors.append(exc)
        finally:
            finished_publishing.set()

    thread = threading.Thread(target=publisher, name="bench-publisher", daemon=True)
    say(f"paced run: {count} events at {rate:.0f}/s")
    thread.start()
    deadline: float | None = None
    with engine.connect() as conn:
        while True:
            with lock:
                pending = [e for e in published if e not in committed]
            asked_at = time.time()
            if pending:
                found = conn.execute(
                    text("SELECT event_id FROM processed_events WHERE event_id = ANY(:ids)"),
                    {"ids": pending},
                ).scalars()
                for event_id in found:
                    committed[event_id] = asked_at
            conn.rollback()  # a fresh snapshot for the next poll
            if finished_publishing.is_set():
                if errors:
                    raise RuntimeError("publishing failed") from errors[0]
                if len(committed) == len(published):
                    break
                deadline = deadline or time.monotonic() + SETTLE_TIMEOUT_S
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{len(published) - len(committed)} events never committed")
            time.sleep(POLL_S)
    thread.join()
    latencies = [(committed[e] - published[e]) * 1000 for e in published]
    result = Latency(
        events=len(latencies),
        rate_per_s=rate,
        p50_ms=statistics.median(latencies),
        p90_ms=percentile(latencies, 0.90),
        p99_ms=percentile(latencies, 0.99),
        max_ms=max(latencies),
    )
    say(f"paced run: p50 {result.p50_ms:.0f} ms, p99 {result.p99_ms:.0f} ms")
    return result
