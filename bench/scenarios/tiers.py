"""``tiers``: set-based tier re-evaluation for 100,000 mentors vs a naive per-mentor loop.

Statistics are loaded set-based (``INSERT … SELECT generate_series``): every
mentor is active in a random share of the period's weeks (the share differs
per mentor, so every tier level occurs), and the lifetime and period tables
are derived from the daily counts the way the pipeline would have built them.
Then:

* ``seconds``: ``worker.tiers.reevaluation.reevaluate_tiers(full=True)`` in one
  transaction, commit included: the first run of the period, so it also writes
  the promotions' notifications and evaluates the promoted mentors' badges;
* ``second_run_seconds``: the same again (nothing left to promote);
* ``naive_seconds``: :mod:`bench.naive_tiers` over a random sample of mentors,
  scaled to all mentors (run first, in a transaction that is rolled back, so
  both see the same data).
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import Engine, event, text

from bench.data import ORG, configuration
from bench.database import analyze, prepare
from bench.progress import say
from bench.resources import throwaway_environment

PERIOD = ("2026", date(2026, 1, 1), date(2026, 12, 31))
NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)
FULL = {"mentors": 100_000, "weeks": 46, "sample": 2_000}
#: --quick: a tenth of the mentors (the first run's promotions alone take minutes at 100,000).
QUICK = {"mentors": 10_000, "weeks": 46, "sample": 500}


def tier_configuration() -> dict[str, Any]:
    """One organisation, four tiers (platinum counts only two types), one active period.

    The only badge is a ``tier`` badge: the loaded statistics come without the
    badges they would have earned on the way, so count or streak badges would
    all be awarded at once by the first run, which is not what a real first
    run of a period does.
    """
    org = str(ORG)
    config = configuration(with_badges=False)
    config["tiers"] = [
        {"organisation_id": org, "level": "bronze", "min_assignments": 5, "min_streak": 2},
        {"organisation_id": org, "level": "silver", "min_assignments": 15, "min_streak": 4},
        {"organisation_id": org, "level": "gold", "min_assignments": 30, "min_streak": 8},
        {"organisation_id": org, "level": "platinum", "min_assignments": 35, "min_streak": 12,
         "activity_types": ["peer_session", "group_meeting"]},
    ]  # fmt: skip
    config["award_periods"] = [
        {"organisation_id": org, "name": PERIOD[0], "start_date": PERIOD[1].isoformat(),
         "end_date": PERIOD[2].isoformat(), "is_active": True},
    ]  # fmt: skip
    config["badges"] = [
        {"organisation_id": org, "code": "gold-mentor", "name": "Gold mentor",
         "criteria": {"type": "tier", "version": 1, "min_tier": "gold"}}
    ]  # fmt: skip
    return config


_LOAD = [
    """INSERT INTO mentors (peer_mentor_id, organisation_id, stats_changed_at)
       SELECT md5('tier-mentor-' || i)::uuid, :org, :now FROM generate_series(1, :n) AS i""",
    # Mentor i is active in about (i % 100) % of the weeks, on a day and with a
    # type that vary from week to week (half of the weeks: a peer session).
    """INSERT INTO daily_activity_counts
           (peer_mentor_id, activity_date, activity_type, organisation_id, activity_count)
       SELECT md5('tier-mentor-' || i)::uuid,
              DATE '2026-01-05' + 7 * w + (i + w) % 7,
              CASE WHEN abs(hashtext(w || '/' || i)) % 10 < 5 THEN 'peer_session'
                   WHEN abs(hashtext(w || '/' || i)) % 10 < 7 THEN 'phone_call'
                   WHEN abs(hashtext(w || '/' || i)) % 10 < 9 THEN 'group_meeting'
                   ELSE 'assignment_completed' END,
              :org, 1 + (i + 3 * w) % 3
       FROM generate_series(1, :n) AS i, generate_series(0, :weeks - 1) AS w
       WHERE abs(hashtext(i || ':' || w)) % 100 < i % 100""",
    """INSERT INTO mentor_activity_counts
           (peer_mentor_id, activity_type, organisation_id, activity_count)
       SELECT peer_mentor_id, activity_type, organisation_id, sum(activity_count)
       FROM daily_activity_counts GROUP BY peer_mentor_id, activity_type, organisation_id""",
    """INSERT INTO period_activity_counts
           (peer_mentor_id, period, period_start, activity_type, organisation_id, activity_count)
       SELECT peer_mentor_id, p.period,
              CAST(date_trunc(p.period, activity_date) AS date), activity_type,
              organisation_id, sum(activity_count)
       FROM daily_activity_counts, (VALUES ('week'), ('month')) AS p(period)
       GROUP BY 1, 2, 3, 4, 5""",
]


def load(engine: Engine, mentors: int, weeks: int) -> int:
    """Load the statistics set-based; returns the number of daily rows."""
    with engine.begin() as conn:
        params = {"org": ORG, "now": NOW, "n": mentors, "weeks": weeks}
        for statement in _LOAD:
            conn.execute(text(statement), params)
        rows = int(conn.execute(text("SELECT count(*) FROM daily_activity_counts")).scalar_one())
    analyze(engine)
    return rows


@dataclass
class NaiveResult:
    seconds: float  # the whole job for all mentors, extrapolated
    tier_seconds: float  # of which: reading, computing and upserting the tier
    sampled: int
    promotions: int
    awards: int
    outbox_rows: int


def naive(engine: Engine, sample: int) -> NaiveResult:
    """The per-mentor loop over a random sample, scaled to all mentors."""
    from bench.naive_tiers import candidate_mentors, evaluate_mentor
    from worker.tiers.followup import tier_definitions
    from worker.tiers.store import active_periods, load_tiers

    with engine.connect() as conn:
        transaction = conn.begin()
        try:
            started = time.perf_counter()
            (period,) = active_periods(conn, NOW.date())
            tiers = load_tiers(conn, [period.organisation_id])
            definitions = {d.id for d in tier_definitions(conn, period.organisation_id)}
            everyone = candidate_mentors(conn, period.organisation_id)
            setup = time.perf_counter() - started
            # A random sample: mentor activity levels follow their insertion order.
            chosen = random.Random(5).sample(everyone, min(sample, len(everyone)))
            started = time.perf_counter()
            outcomes = [
                evaluate_mentor(conn, m, period, tiers, now=NOW, tier_definitions=definitions)
                for m in chosen
            ]
            loop = time.perf_counter() - started
        finally:
            transaction.rollback()
    scale = len(everyone) / len(chosen)
    return NaiveResult(
        seconds=setup + loop * scale,
        tier_seconds=setup + sum(o.tier_seconds for o in outcomes) * scale,
        sampled=len(chosen),
        promotions=sum(o.promoted for o in outcomes),
        awards=sum(o.awards for o in outcomes),
        outbox_rows=sum(o.outbox_rows for o in outcomes),
    )


def set_based(engine: Engine) -> tuple[float, float, Any]:
    """One real re-evaluation (commit included): (seconds, tier part seconds, TierRun).

    The tier part is the time of the ``tier_assignments`` upsert statement
    (the query and the promotions), the counterpart of the naive loop's
    read-compute-upsert part.
    """
    from worker.core.clock import FixedClock
    from worker.tiers.reevaluation import reevaluate_tiers

    timings: list[float] = []

    def before(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        conn.info["bench_started"] = time.perf_counter()

    def after(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if statement.lstrip().startswith("INSERT INTO tier_assignments"):
            timings.append(time.perf_counter() - conn.info["bench_started"])

    event.listen(engine, "before_cursor_execute", before)
    event.listen(engine, "after_cursor_execute", after)
    try:
        started = time.perf_counter()
        with engine.begin() as conn:
            run = reevaluate_tiers(conn, clock=FixedClock(NOW), full=True)
        seconds = time.perf_counter() - started
    finally:
        event.remove(engine, "before_cursor_execute", before)
        event.remove(engine, "after_cursor_execute", after)
    return seconds, sum(timings), run


def run(*, quick: bool) -> dict[str, Any]:
    """Run the scenario on its own database (in this process; no worker needed)."""
    size = QUICK if quick else FULL
    with throwaway_environment() as env:
        engine = prepare(env.database_url, tier_configuration())
        try:
            say(f"loading statistics for {size['mentors']} mentors")
            started = time.monotonic()
            daily_rows = load(engine, size["mentors"], size["weeks"])
            say(f"{daily_rows} daily rows in {time.monotonic() - started:.1f}s")
            slow = naive(engine, size["sample"])
            say(
                f"naive: {slow.sampled} mentors timed -> {slow.seconds:.1f}s for all "
                f"(tier part {slow.tier_seconds:.1f}s)"
            )
            seconds, tier_seconds, first = set_based(engine)
            say(
                f"set-based: {seconds:.2f}s (tier part {tier_seconds:.2f}s), "
                f"{len(first.promotions)} promotions"
            )
            second_seconds, _, _ = set_based(engine)
            say(f"set-based, second run: {second_seconds:.2f}s")
            with engine.connect() as conn:
                tiers: dict[int, int] = dict(
                    conn.execute(
                        text("SELECT tier, count(*) FROM tier_assignments GROUP BY tier")
                    ).all()
                )
        finally:
            engine.dispose()
    return {
        "mentors": size["mentors"],
        "seconds": round(seconds, 2),
        "naive_seconds": round(slow.seconds, 1),
        "speedup": round(slow.seconds / seconds, 1),
        "tier_seconds": round(tier_seconds, 2),
        "naive_tier_seconds": round(slow.tier_seconds, 1),
        "tier_speedup": round(slow.tier_seconds / tier_seconds, 1),
        "second_run_seconds": round(second_seconds, 2),
        "daily_rows": daily_rows,
        "promotions": len(first.promotions),
        "badges_awarded": len(first.awarded),
        "tier_counts": {str(k): v for k, v in sorted(tiers.items())},
        "naive_sample": slow.sampled,
        "naive_sample_promotions": slow.promotions,
        "naive_sample_awards": slow.awards,
        "naive_sample_outbox_rows": slow.outbox_rows,
        "outbox_rows": len(first.outbox),
    }
