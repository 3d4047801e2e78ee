"""``retro``: retroactive evaluation of two new badges for 100,000 mentors vs one at a time.

The statistics of the ``tiers`` scenario are loaded set-based (every mentor
active in a random share of 46 weeks, four activity types); then a
configuration adds two badges to the organisation: a threshold ("twelve peer
sessions") and a streak ("two weeks of phone calls in a row").  Then:

* ``naive_seconds``: the project's own per-mentor evaluation
  (``worker.badges.evaluation.evaluate_mentors`` for one mentor at a time,
  limited to the two new definitions, each under its mentor lock, with the
  backfill notifications written the same way), over a random sample of
  mentors and scaled to all of them; run first, in a transaction that is
  rolled back, so both sides see the same data;
* ``seconds``: the full retroactive run as ``badges definitions apply``
  does it after the configuration committed
  (``worker.configuration.followup.plan`` + ``run_plan``: the wait for running
  transactions, listing the mentors, every chunk's locks, awards, audit rows
  and outbox rows, commits included);
* ``preview_seconds``: the dry run's read-only counts (``preview``) before it.
"""

from __future__ import annotations

import random
import time
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from sqlalchemy import Engine, text

from bench.data import ORG, configuration
from bench.database import prepare
from bench.progress import say
from bench.resources import throwaway_environment
from bench.scenarios.tiers import load

NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)
FULL = {"mentors": 100_000, "weeks": 46, "sample": 2_000}
QUICK = {"mentors": 10_000, "weeks": 46, "sample": 500}


def new_badges() -> dict[str, Any]:
    org = str(ORG)
    config = configuration(with_badges=False)
    config["badges"] = [
        {"organisation_id": org, "code": "twelve-sessions", "name": "Twelve peer sessions",
         "criteria": {"type": "threshold", "version": 1, "activity_types": ["peer_session"],
                      "min_count": 12}},
        {"organisation_id": org, "code": "phone-fortnight", "name": "Two weeks of calls",
         "criteria": {"type": "streak", "version": 1, "period": "week",
                      "activity_types": ["phone_call"], "min_length": 2}},
    ]  # fmt: skip
    return config


def apply_change(engine: Engine) -> tuple[UUID, ...]:
    """Commit the two new badges; the definitions to evaluate."""
    from worker.configuration.apply import apply_configuration
    from worker.configuration.schema import validate_configuration
    from worker.core.clock import FixedClock

    with engine.begin() as conn:
        report = apply_configuration(conn, validate_configuration(new_badges()), FixedClock(NOW))
    return report.evaluate_definitions


def naive(engine: Engine, definitions: tuple[UUID, ...], sample: int) -> tuple[float, int, int]:
    """(seconds for all mentors, extrapolated; mentors sampled; awards in the sample)."""
    from worker.badges.evaluation import evaluate_mentors
    from worker.db.locks import lock_mentors
    from worker.notifications.outbox import notify_awards

    with engine.connect() as conn:
        transaction = conn.begin()
        try:
            started = time.perf_counter()
            everyone = list(
                conn.scalars(
                    text("SELECT peer_mentor_id FROM mentors WHERE organisation_id = :org"),
                    {"org": ORG},
                )
            )
            setup = time.perf_counter() - started
            chosen = random.Random(5).sample(everyone, min(sample, len(everyone)))
            awards = 0
            started = time.perf_counter()
            for mentor in chosen:
                lock_mentors(conn, [mentor])
                result = evaluate_mentors(
                    conn, {mentor: ORG}, now=NOW, source="backfill", only=set(definitions)
                )
                notify_awards(conn, result.awarded, now=NOW, backfill=True)
                awards += len(result.awarded)
            loop = time.perf_counter() - started
        finally:
            transaction.rollback()
    return setup + loop * len(everyone) / len(chosen), len(chosen), awards


def set_based(engine: Engine, definitions: tuple[UUID, ...]) -> tuple[float, float, Any]:
    """(preview seconds, full run seconds, RetroReport)."""
    from worker.badges import retroactive
    from worker.configuration import followup
    from worker.core.clock import FixedClock

    started = time.perf_counter()
    with engine.connect() as conn:
        counts = retroactive.preview(conn, retroactive.load_definitions(conn, definitions))
        conn.rollback()
    preview_seconds = time.perf_counter() - started
    say("preview: " + ", ".join(f"{c.code} +{c.newly_earned}" for c in counts))
    started = time.perf_counter()
    report = followup.run_plan(engine, followup.plan(engine, definitions), clock=FixedClock(NOW))
    seconds = time.perf_counter() - started
    return preview_seconds, seconds, report


def run(*, quick: bool) -> dict[str, Any]:
    """Run the scenario on its own database (in this process; no worker needed)."""
    size = QUICK if quick else FULL
    with throwaway_environment() as env:
        engine = prepare(env.database_url, configuration(with_badges=False))
        try:
            say(f"loading statistics for {size['mentors']} mentors")
            started = time.monotonic()
            daily_rows = load(engine, size["mentors"], size["weeks"])
            say(f"{daily_rows} daily rows in {time.monotonic() - started:.1f}s")
            definitions = apply_change(engine)
            slow, sampled, sample_awards = naive(engine, definitions, size["sample"])
            say(f"naive: {sampled} mentors timed -> {slow:.1f}s for all")
            preview_seconds, seconds, report = set_based(engine, definitions)
            say(f"set-based: {seconds:.2f}s, {len(report.awarded)} awards")
            with engine.connect() as conn:
                outbox: dict[str, int] = dict(
                    conn.execute(
                        text("SELECT channel || ':' || state, count(*) FROM notification_outbox "
                             "GROUP BY 1")
                    ).all()
                )  # fmt: skip
        finally:
            engine.dispose()
    return {
        "mentors": size["mentors"],
        "seconds": round(seconds, 2),
        "naive_seconds": round(slow, 1),
        "speedup": round(slow / seconds, 1),
        "preview_seconds": round(preview_seconds, 2),
        "awards": {c.code: c.newly_earned for c in report.badges},
        "outbox_rows": outbox,
        "daily_rows": daily_rows,
        "naive_sample": sampled,
        "naive_sample_awards": sample_awards,
    }
