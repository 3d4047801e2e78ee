"""``history``: the cost of one more event for a mentor with 100 vs 100,000 prior activities.

Both mentors' history is loaded with the bulk import (``worker.ingestion.history_import``,
the real code: ledger, stats, evaluation), spread over the same ten years, so
the only difference is how many activities they have.  Then, alternating
between the two mentors, one new event at a time goes through
``worker.ingestion.ingest.ingest_events`` in its own transaction (commit included),
in this process on PostgreSQL; the medians are compared.
"""

from __future__ import annotations

import statistics
import tempfile
import time
import uuid
from datetime import date, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import Engine

from bench.data import event_stream, history_activities, mentor_id
from bench.database import analyze, prepare
from bench.progress import say
from bench.resources import throwaway_environment

SMALL, LARGE = 100, 100_000
FIRST_DAY, LAST_DAY = date(2017, 1, 1), date(2026, 11, 15)
FULL = {"rounds": 41, "warmup": 5}
QUICK = {"rounds": 21, "warmup": 3}


def _load_history(engine: Engine, mentor: uuid.UUID, count: int, *, seed: int) -> float:
    """Bulk-import ``count`` activities for ``mentor``; returns the seconds it took."""
    from worker.core.clock import SystemClock
    from worker.ingestion.history_import import import_activities
    from worker.ingestion.staging import activity_line

    activities = history_activities(
        count, mentors=[mentor], first=FIRST_DAY, last=LAST_DAY, seed=seed
    )
    with tempfile.TemporaryDirectory(prefix="bench-history-") as folder:
        path = Path(folder) / "history.jsonl"
        with path.open("w") as handle:
            handle.writelines(activity_line(a) + "\n" for a in activities)
        started = time.monotonic()
        report = import_activities(engine, path, clock=SystemClock())
    if report.imported != count:
        raise RuntimeError(f"history import loaded {report.imported} of {count}")
    return time.monotonic() - started


def _one_event_ms(engine: Engine, mentor: uuid.UUID, day: date) -> float:
    from worker.core.clock import SystemClock
    from worker.ingestion.ingest import IncomingEvent, ingest_events

    event = next(event_stream(1, mentors=1, seed=day.toordinal()))
    event["activity"]["peer_mentor_id"] = str(mentor)
    event["activity"]["activity_date"] = day.isoformat()
    started = time.perf_counter()
    with engine.begin() as conn:
        result = ingest_events(conn, [IncomingEvent(event, "bench")], clock=SystemClock())
    elapsed = time.perf_counter() - started
    if result.applied != 1:
        raise RuntimeError(f"event not applied: {result}")
    return elapsed * 1000


def run(*, quick: bool) -> dict[str, Any]:
    """Run the scenario on its own database (no broker, no worker processes)."""
    size = QUICK if quick else FULL
    small, large = mentor_id(1, run="history"), mentor_id(2, run="history")
    with throwaway_environment() as env:
        engine = prepare(env.database_url)
        try:
            say(f"loading {SMALL} + {LARGE} historical activities")
            _load_history(engine, small, SMALL, seed=11)
            load_seconds = _load_history(engine, large, LARGE, seed=12)
            analyze(engine)
            timings: dict[uuid.UUID, list[float]] = {small: [], large: []}
            for number in range(size["warmup"] + size["rounds"]):
                day = LAST_DAY + timedelta(days=1 + number % 5)
                # Alternate which mentor goes first, so neither gets a warmer cache.
                order = (small, large) if number % 2 == 0 else (large, small)
                for mentor in order:
                    ms = _one_event_ms(engine, mentor, day)
                    if number >= size["warmup"]:
                        timings[mentor].append(ms)
        finally:
            engine.dispose()
    small_ms, large_ms = statistics.median(timings[small]), statistics.median(timings[large])
    say(f"one more event: {small_ms:.2f} ms (100) vs {large_ms:.2f} ms (100,000)")
    return {
        "small_ms": round(small_ms, 2),
        "large_ms": round(large_ms, 2),
        "ratio": round(large_ms / small_ms, 3),
        "small_history": SMALL,
        "large_history": LARGE,
        "runs": size["rounds"],
        "small_p90_ms": round(sorted(timings[small])[int(0.9 * len(timings[small]))], 2),
        "large_p90_ms": round(sorted(timings[large])[int(0.9 * len(timings[large]))], 2),
        "history_load_seconds": round(load_seconds, 1),
    }
