"""The set-based tier query and follow-up writes against plain Python (PostgreSQL and SQLite).

The query reads weekly totals for the weeks wholly inside a period and daily
rows only for the partial weeks at its edges; these tests compare it on random
data with :func:`worker.model.tier_rules.window_stats` (the definition of "inside
the period"), for periods that start and end on every weekday, and check that
the outbox rows a run writes equal those the outbox's row-by-row path writes
for the same promotions and awards.
"""

from __future__ import annotations

import random
import uuid
from collections import Counter
from collections.abc import Iterator, Sequence
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import Connection, Engine, delete, func, select

from schema.tables import (
    daily_activity_counts,
    earned_badges,
    mentors,
    notification_outbox,
    period_activity_counts,
    tier_assignments,
)
from tests.helpers import badge
from tests.integration.harness import apply, organisation
from tests.tier_helpers import activity_events, award_period, ingest, period_id, tier
from worker.configuration.apply import apply_configuration
from worker.configuration.schema import validate_configuration
from worker.core.clock import FixedClock
from worker.model.streaks import Period, period_start
from worker.model.tier_rules import DailyCount, type_filters, window_stats
from worker.model.tiers import RecognitionTier, TierAwardPeriod, highest_eligible_tier
from worker.notifications import outbox
from worker.tiers.query import MASK_WEEKS, highest_tiers, week_span
from worker.tiers.reevaluation import reevaluate_tiers

JUNE = datetime(2026, 6, 1, 10, 0, tzinfo=UTC)
TYPES = ("peer_session", "call", "group_meeting")

# Promotions get both channels' rows: this process writes push rows.
pytestmark = pytest.mark.usefixtures("push_enabled")


@pytest.fixture(params=["postgresql", "sqlite"])
def any_conn(request: pytest.FixtureRequest, sqlite_engine: Engine) -> Iterator[Connection]:
    if request.param == "postgresql":
        yield request.getfixturevalue("conn")
        return
    with sqlite_engine.connect() as c:
        transaction = c.begin()
        try:
            yield c
        finally:
            transaction.rollback()


def _load_random_stats(
    conn: Connection, org: uuid.UUID, rng: random.Random, mentor_count: int
) -> dict[uuid.UUID, list[DailyCount]]:
    """Daily rows and the weekly/monthly rows the pipeline derives from them."""
    first = date(2025, 12, 1)
    stats: dict[uuid.UUID, list[DailyCount]] = {}
    for _ in range(mentor_count):
        mentor = uuid.uuid4()
        density = rng.random()
        days = [first + timedelta(days=n) for n in range(480) if rng.random() < density * 0.4]
        stats[mentor] = [
            DailyCount(day, kind, rng.randint(1, 3))
            for day in days
            for kind in rng.sample(TYPES, rng.randint(1, 2))
        ]
    conn.execute(
        mentors.insert(),
        [{"peer_mentor_id": m, "organisation_id": org, "stats_changed_at": JUNE} for m in stats],
    )
    daily = [
        {
            "peer_mentor_id": m,
            "activity_date": d.day,
            "activity_type": d.activity_type,
            "organisation_id": org,
            "activity_count": d.count,
        }
        for m, rows in stats.items()
        for d in rows
    ]
    if daily:
        conn.execute(daily_activity_counts.insert(), daily)
    periods: Counter[tuple[uuid.UUID, str, date, str]] = Counter()
    for m, rows in stats.items():
        for d in rows:
            for p in (Period.WEEK, Period.MONTH):
                periods[(m, p.value, period_start(d.day, p), d.activity_type)] += d.count
    if periods:
        conn.execute(
            period_activity_counts.insert(),
            [
                {
                    "peer_mentor_id": m,
                    "period": p,
                    "period_start": start,
                    "activity_type": kind,
                    "organisation_id": org,
                    "activity_count": n,
                }
                for (m, p, start, kind), n in periods.items()
            ],
        )
    return stats


def _expected(
    stats: dict[uuid.UUID, list[DailyCount]],
    tiers: list[RecognitionTier],
    period: TierAwardPeriod,
) -> dict[uuid.UUID, int]:
    result = {}
    for mentor, rows in stats.items():
        level = 0
        for types in type_filters(tiers):
            s = window_stats(rows, types, period.start_date, period.end_date)
            same = [t for t in tiers if frozenset(t.activity_types) == types]
            level = max(
                level, int(highest_eligible_tier(same, s.count, s.longest_weekly_streak) or 0)
            )
        result[mentor] = level
    return result


def _periods(org: uuid.UUID) -> list[TierAwardPeriod]:
    """Periods starting and ending on every weekday, shorter than a week, a year, longer."""
    spans = [
        (date(2026, 1, 1), date(2026, 12, 31)),  # Thursday .. Thursday
        (date(2026, 1, 5), date(2026, 3, 29)),  # Monday .. Sunday: no edge days
        (date(2026, 1, 6), date(2026, 3, 30)),  # Tuesday .. Monday
        (date(2026, 1, 10), date(2026, 2, 14)),  # Saturday .. Saturday
        (date(2026, 1, 11), date(2026, 2, 7)),  # Sunday .. Saturday
        (date(2026, 2, 4), date(2026, 2, 6)),  # inside one week
        (date(2026, 2, 6), date(2026, 2, 10)),  # two partial weeks, no whole one
        (date(2026, 2, 9), date(2026, 2, 15)),  # exactly one week
        (date(2026, 3, 3), date(2026, 3, 3)),  # one day
        # Longer than MASK_WEEKS weeks: the window-function path.
        (date(2025, 12, 3), date(2027, 3, 10)),  # Wednesday .. Wednesday, 67 weeks
        (date(2025, 12, 1), date(2027, 2, 21)),  # Monday .. Sunday, 64 weeks
    ]
    return [
        TierAwardPeriod(
            id=uuid.uuid4(),
            organisation_id=org,
            name=f"p{n}",
            start_date=start,
            end_date=end,
            is_active=True,
        )
        for n, (start, end) in enumerate(spans)
    ]


def _random_tiers(org: uuid.UUID, rng: random.Random) -> list[RecognitionTier]:
    filters = [(), ("peer_session",), ("peer_session", "group_meeting"), ()]
    return [
        RecognitionTier(
            organisation_id=org,
            level=level,
            min_assignments=rng.randint(0, 40),
            min_streak=rng.choice([0, 1, 2, 3, 5, 8, 12, 20, 62, 63, 64]),
            activity_types=filters[(level + rng.randint(0, 3)) % 4],
        )
        for level in (1, 2, 3, 4)
    ]


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_highest_tiers_equals_python_on_random_data(any_conn: Connection, seed: int) -> None:
    rng = random.Random(seed)
    org = uuid.uuid4()
    stats = _load_random_stats(any_conn, org, rng, 40)
    periods = _periods(org)
    # Both ways of finding streaks are exercised: week bit masks and window functions.
    spans = {week_span(p.start_date, p.end_date)[1] > MASK_WEEKS for p in periods}
    assert spans == {True, False}
    levels: set[int] = set()
    for period in periods:
        for _ in range(3):
            tiers = _random_tiers(org, rng)
            best = highest_tiers(any_conn, period, tiers)
            got = {r.peer_mentor_id: r.tier for r in any_conn.execute(select(best))}
            assert got == _expected(stats, tiers, period), (period, tiers)
            levels |= set(got.values())
    assert levels == {0, 1, 2, 3, 4}


def test_edge_weeks_count_only_days_inside_the_period(any_conn: Connection) -> None:
    """A week cut by the boundary counts its inside days only, read from the daily rows."""
    org, mentor = uuid.uuid4(), uuid.uuid4()
    # Wed 2026-02-04 .. Tue 2026-02-17: partial week, one whole week, partial week.
    stats = {
        mentor: [
            DailyCount(date(2026, 2, 2), "peer_session", 5),  # Monday before the start
            DailyCount(date(2026, 2, 5), "peer_session", 1),  # inside, first week
            DailyCount(date(2026, 2, 11), "peer_session", 1),  # the whole week
            DailyCount(date(2026, 2, 17), "peer_session", 1),  # inside, last week
            DailyCount(date(2026, 2, 18), "peer_session", 5),  # day after the end
        ]
    }
    any_conn.execute(
        mentors.insert(),
        {"peer_mentor_id": mentor, "organisation_id": org, "stats_changed_at": JUNE},
    )
    any_conn.execute(
        daily_activity_counts.insert(),
        [
            {
                "peer_mentor_id": mentor,
                "activity_date": d.day,
                "activity_type": d.activity_type,
                "organisation_id": org,
                "activity_count": d.count,
            }
            for d in stats[mentor]
        ],
    )
    weekly: Counter[date] = Counter()
    for d in stats[mentor]:
        weekly[period_start(d.day, Period.WEEK)] += d.count
    any_conn.execute(
        period_activity_counts.insert(),
        [
            {
                "peer_mentor_id": mentor,
                "period": "week",
                "period_start": start,
                "activity_type": "peer_session",
                "organisation_id": org,
                "activity_count": n,
            }
            for start, n in weekly.items()
        ],
    )
    period = TierAwardPeriod(
        id=uuid.uuid4(),
        organisation_id=org,
        name="p",
        start_date=date(2026, 2, 4),
        end_date=date(2026, 2, 17),
        is_active=True,
    )
    three_in_three = RecognitionTier(
        organisation_id=org, level=1, min_assignments=3, min_streak=3, activity_types=()
    )
    four = RecognitionTier(
        organisation_id=org, level=2, min_assignments=4, min_streak=1, activity_types=()
    )
    best = highest_tiers(any_conn, period, [three_in_three, four])
    assert {r.peer_mentor_id: r.tier for r in any_conn.execute(select(best))} == {mentor: 1}
    assert _expected(stats, [three_in_three, four], period) == {mentor: 1}


def test_incremental_query_reads_only_changed_mentors(any_conn: Connection) -> None:
    rng = random.Random(7)
    org = uuid.uuid4()
    stats = _load_random_stats(any_conn, org, rng, 12)
    changed = sorted(stats, key=str)[:5]
    any_conn.execute(
        mentors.update()
        .where(mentors.c.peer_mentor_id.in_(changed))
        .values(stats_changed_at=JUNE + timedelta(hours=1))
    )
    (period, *_) = _periods(org)
    tiers = _random_tiers(org, rng)
    best = highest_tiers(any_conn, period, tiers, since=JUNE)
    got = {r.peer_mentor_id: r.tier for r in any_conn.execute(select(best))}
    expected = _expected(stats, tiers, period)
    assert got == {m: expected[m] for m in changed}


_COMPARED = (
    "dedup_key",
    "channel",
    "kind",
    "peer_mentor_id",
    "organisation_id",
    "payload",
    "state",
    "backfill",
    "attempts",
    "last_error",
    "created_at",
    "updated_at",
    "dispatched_at",
    "delivered_at",
)


def _outbox(conn: Connection, org: uuid.UUID, kind: str) -> list[tuple[Any, ...]]:
    rows = conn.execute(
        select(*(notification_outbox.c[c] for c in _COMPARED)).where(
            notification_outbox.c.organisation_id == org, notification_outbox.c.kind == kind
        )
    ).all()
    return sorted((tuple(r) for r in rows), key=repr)


def _configure(
    conn: Connection,
    org: uuid.UUID,
    badges: list[dict[str, Any]],
    *,
    extra_periods: Sequence[dict[str, Any]] = (),
) -> None:
    config = {
        "organisations": [organisation(org)],
        "tiers": [
            tier(org, "bronze", 3, 2),
            tier(org, "silver", 8, 4),
            tier(org, "gold", 15, 6, "peer_session"),
        ],
        "award_periods": [award_period(org), *extra_periods],
        "badges": badges,
    }
    if conn.dialect.name == "postgresql":
        apply(conn, config)
    else:
        apply_configuration(conn, validate_configuration(config), FixedClock(JUNE))


def test_set_based_outbox_rows_equal_the_per_row_writer(any_conn: Connection) -> None:
    org = uuid.uuid4()
    _configure(
        any_conn,
        org,
        [
            badge(org, "silver-mentor", {"type": "tier", "version": 1, "min_tier": "silver"}),
            badge(org, "gold-mentor", {"type": "tier", "version": 1, "min_tier": "gold"}),
        ],
    )
    # (activities, weekly streak): bronze, silver, gold, gold, nothing, silver.
    team = {uuid.uuid4(): cs for cs in [(3, 2), (8, 4), (15, 6), (20, 8), (1, 1), (9, 5)]}
    ingest(
        any_conn,
        [e for m, (c, s) in team.items() for e in activity_events(org, m, count=c, streak=s)],
        JUNE,
    )
    run = reevaluate_tiers(any_conn, clock=FixedClock(JUNE), organisation_id=org)
    assert len(run.promotions) == 5
    assert sorted(b.code for b in run.awarded) == ["gold-mentor"] * 2 + ["silver-mentor"] * 4
    set_based = {k: _outbox(any_conn, org, k) for k in ("tier_promoted", "badge_earned")}
    assert len(set_based["tier_promoted"]) == 2 * len(run.promotions)
    assert len(set_based["badge_earned"]) == 2 * len(run.awarded)
    assert len(run.outbox) == 2 * (len(run.promotions) + len(run.awarded))
    refs = {ref.id for ref in run.outbox}
    stored = set(
        any_conn.scalars(
            select(notification_outbox.c.id).where(notification_outbox.c.organisation_id == org)
        )
    )
    assert refs == stored

    any_conn.execute(
        delete(notification_outbox).where(notification_outbox.c.organisation_id == org)
    )
    per_row_items = outbox.tier_promotions(run.promotions)
    per_row_items += [outbox.badge_earned(e) for e in run.awarded]
    outbox._write_rows(
        any_conn, per_row_items, now=JUNE, backfill=False, channels=outbox.written_channels()
    )
    per_row = {k: _outbox(any_conn, org, k) for k in ("tier_promoted", "badge_earned")}
    assert set_based == per_row


def test_tier_badges_are_awarded_once_and_see_tiers_of_every_period(
    any_conn: Connection,
) -> None:
    org, mentor, other = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    earlier = award_period(org, "2025", date(2025, 1, 1), date(2025, 12, 31), active=False)
    _configure(any_conn, org, [], extra_periods=[earlier])
    ingest(
        any_conn,
        activity_events(org, mentor, count=3, streak=2)
        + activity_events(org, other, count=22, streak=4),
        JUNE,
    )
    # mentor held silver in the earlier period, and reaches only bronze in this one.
    any_conn.execute(
        tier_assignments.insert(),
        {
            "id": uuid.uuid4(),
            "peer_mentor_id": mentor,
            "organisation_id": org,
            "award_period_id": period_id(org, "2025"),
            "tier": 2,
            "assigned_at": JUNE - timedelta(days=200),
        },
    )
    # Definitions created after the activity was ingested, so only the tier run can award.
    composite = {
        "type": "all_of",
        "version": 1,
        "criteria": [
            {"type": "tier", "version": 1, "min_tier": "silver"},
            {"type": "threshold", "version": 1, "min_count": 20},
        ],
    }
    _configure(
        any_conn,
        org,
        [
            badge(org, "silver-mentor", {"type": "tier", "version": 1, "min_tier": "silver"}),
            badge(org, "silver-and-busy", composite),
            # Not about tiers: a promotion cannot newly satisfy it, so the tier run
            # does not evaluate it (the next ingest for the mentor does).
            badge(org, "first-steps", {"type": "threshold", "version": 1, "min_count": 1}),
        ],
        extra_periods=[earlier],
    )

    first = reevaluate_tiers(any_conn, clock=FixedClock(JUNE), organisation_id=org)

    assert sorted((b.peer_mentor_id == mentor, b.code) for b in first.awarded) == [
        (False, "silver-and-busy"),
        (False, "silver-mentor"),
        (True, "silver-mentor"),
    ]
    assert len(first.outbox) == 2 * (len(first.promotions) + 3)
    again = reevaluate_tiers(
        any_conn, clock=FixedClock(JUNE + timedelta(hours=1)), organisation_id=org, full=True
    )
    assert again.awarded == [] and again.outbox == []
    held = Counter(
        any_conn.execute(
            select(earned_badges.c.peer_mentor_id, earned_badges.c.badge_definition_id).where(
                earned_badges.c.organisation_id == org
            )
        ).all()
    )
    assert len(held) == 3 and set(held.values()) == {1}
    badge_rows = any_conn.scalar(
        select(func.count())
        .select_from(notification_outbox)
        .where(
            notification_outbox.c.organisation_id == org,
            notification_outbox.c.kind == "badge_earned",
        )
    )
    assert badge_rows == 2 * 3
