"""Tier re-evaluation on the real PostgreSQL (and once on SQLite)."""

from __future__ import annotations

import threading
import uuid
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import Connection, Date, Engine, event, func, literal, select, text

from schema.migrate import upgrade
from schema.tables import (
    daily_activity_counts,
    earned_badges,
    mentors,
    notification_outbox,
    period_activity_counts,
    tier_assignments,
    tier_evaluation_runs,
)
from tests.helpers import badge, saved_event
from tests.integration.harness import apply, organisation
from tests.tier_helpers import (
    MONDAY,
    activity_events,
    assigned_tiers,
    award_period,
    ingest,
    period_id,
    promotion_keys,
    tier,
)
from worker.configuration.apply import apply_configuration
from worker.configuration.schema import validate_configuration
from worker.core.clock import FixedClock
from worker.db.dates import month_start, week_number, week_start
from worker.model.streaks import Period, period_start
from worker.tiers.reevaluation import reevaluate_tiers

JUNE = datetime(2026, 6, 1, 10, 0, tzinfo=UTC)
LEVELS = ["bronze", "silver", "gold", "platinum"]
#: (min_assignments, min_streak) per level; platinum counts peer sessions only.
THRESHOLDS = {"bronze": (3, 2), "silver": (8, 4), "gold": (15, 6), "platinum": (25, 10)}

# Promotions get both channels' rows: this process writes push rows.
pytestmark = pytest.mark.usefixtures("push_enabled")


def _standard_tiers(org: uuid.UUID) -> list[dict[str, Any]]:
    return [
        tier(org, level, a, s, *(["peer_session"] if level == "platinum" else []))
        for level, (a, s) in THRESHOLDS.items()
    ]


def _setup(conn: Connection, org: uuid.UUID, **config: Any) -> None:
    apply(
        conn,
        {
            "organisations": [organisation(org)],
            "tiers": _standard_tiers(org),
            "award_periods": [award_period(org)],
            **config,
        },
    )


def _threshold_cases() -> list[tuple[str, int, int, int | None]]:
    """(case, assignments, streak, expected level) at, below and above every tier."""
    cases: list[tuple[str, int, int, int | None]] = []
    for index, level in enumerate(LEVELS, start=1):
        a, s = THRESHOLDS[level]
        below = index - 1 or None
        cases += [
            (f"{level} exactly", a, s, index),
            (f"{level} one activity short", a - 1, s, below),
            (f"{level} one week short", a, s - 1, below),
            (f"{level} just above", a + 1, s + 1, index),
        ]
    return cases


def test_mentors_at_below_and_above_each_threshold_get_the_right_tier(conn: Connection) -> None:
    org = uuid.uuid4()
    _setup(conn, org)
    cases = _threshold_cases()
    mentor_ids = {case: uuid.uuid4() for case, *_ in cases}
    events = [
        e
        for case, a, s, _ in cases
        for e in activity_events(org, mentor_ids[case], count=a, streak=s)
    ]
    ingest(conn, events, JUNE - timedelta(days=1))

    run = reevaluate_tiers(conn, clock=FixedClock(JUNE), organisation_id=org)

    got = assigned_tiers(conn, period_id(org))
    assert {case: got.get(mentor_ids[case]) for case, *_ in cases} == {
        case: expected for case, _, _, expected in cases
    }
    assert len(run.promotions) == len([c for c in cases if c[3] is not None])
    assert run.periods[0].full and run.periods[0].mentors_evaluated == len(cases)


def test_the_highest_tier_where_both_conditions_hold_wins(conn: Connection) -> None:
    org = uuid.uuid4()
    _setup(conn, org)
    gold_counts_bronze_streak, calls_only = uuid.uuid4(), uuid.uuid4()
    ingest(
        conn,
        # 15 activities (gold's count) but a 3-week streak (silver needs 4): bronze.
        activity_events(org, gold_counts_bronze_streak, count=15, streak=3)
        # platinum's numbers, but platinum counts only peer sessions: gold.
        + activity_events(org, calls_only, count=30, streak=12, activity_type="call"),
        JUNE,
    )
    reevaluate_tiers(conn, clock=FixedClock(JUNE), organisation_id=org)
    assert assigned_tiers(conn, period_id(org)) == {gold_counts_bronze_streak: 1, calls_only: 3}


def test_tiers_need_not_be_nested(conn: Connection) -> None:
    """Silver asks a longer streak than gold: gold's conditions hold, silver's do not."""
    org = uuid.uuid4()
    apply(
        conn,
        {
            "organisations": [organisation(org)],
            "tiers": [tier(org, "silver", 8, 6), tier(org, "gold", 15, 3)],
            "award_periods": [award_period(org)],
        },
    )
    mentor = uuid.uuid4()
    ingest(conn, activity_events(org, mentor, count=15, streak=3), JUNE)
    reevaluate_tiers(conn, clock=FixedClock(JUNE), organisation_id=org)
    assert assigned_tiers(conn, period_id(org)) == {mentor: 3}


def test_only_activities_dated_inside_the_period_count(conn: Connection) -> None:
    org = uuid.uuid4()
    apply(
        conn,
        {
            "organisations": [organisation(org)],
            "tiers": [tier(org, "bronze", 2, 2)],
            # Thursday to Sunday: the first ISO week is cut by the start date.
            "award_periods": [award_period(org, start=date(2026, 1, 1), end=date(2026, 1, 11))],
        },
    )
    inside, outside = uuid.uuid4(), uuid.uuid4()
    days_inside = [date(2026, 1, 1), date(2026, 1, 11)]  # first and last day, adjacent weeks
    days_outside = [date(2025, 12, 31), date(2026, 1, 12)]  # one day before / after
    ingest(
        conn,
        [saved_event(org=org, mentor=inside, day=d) for d in days_inside]
        + [saved_event(org=org, mentor=outside, day=d) for d in days_outside]
        + [saved_event(org=org, mentor=outside, day=date(2026, 1, 5))],
        JUNE,
    )
    clock = FixedClock(datetime(2026, 1, 11, 12, tzinfo=UTC))
    reevaluate_tiers(conn, clock=clock, organisation_id=org)
    assert assigned_tiers(conn, period_id(org)) == {inside: 1}


def _one_mentor_org(conn: Connection, **period: Any) -> tuple[uuid.UUID, uuid.UUID]:
    org, mentor = uuid.uuid4(), uuid.uuid4()
    apply(
        conn,
        {
            "organisations": [organisation(org)],
            "tiers": [tier(org, "bronze", 1, 1)],
            "award_periods": [award_period(org, **period)],
        },
    )
    day = period.get("start", date(2026, 1, 1))
    ingest(conn, [saved_event(org=org, mentor=mentor, day=day)], JUNE)
    return org, mentor


def test_an_inactive_period_assigns_nothing(conn: Connection) -> None:
    org, mentor = _one_mentor_org(conn, active=False)
    run = reevaluate_tiers(conn, clock=FixedClock(JUNE), organisation_id=org)
    assert run.periods == [] and assigned_tiers(conn, period_id(org)) == {}
    assert promotion_keys(conn, mentor) == {}


def test_an_organisation_without_tiers_assigns_nothing(conn: Connection) -> None:
    org, mentor = uuid.uuid4(), uuid.uuid4()
    apply(conn, {"organisations": [organisation(org)], "award_periods": [award_period(org)]})
    ingest(conn, activity_events(org, mentor, count=5, streak=5), JUNE)
    run = reevaluate_tiers(conn, clock=FixedClock(JUNE), organisation_id=org)
    assert len(run.periods) == 1 and run.promotions == []
    assert assigned_tiers(conn, period_id(org)) == {}


@pytest.mark.parametrize(
    ("start", "end", "instant", "active"),
    [
        # Ordinary year: local (Oslo, +01:00 in winter) midnight, not UTC midnight.
        pytest.param(date(2026, 1, 1), date(2026, 12, 31), "2025-12-31T22:59:59+00:00", False, id="year-before-start"),
        pytest.param(date(2026, 1, 1), date(2026, 12, 31), "2025-12-31T23:00:00+00:00", True, id="year-first-instant"),
        pytest.param(date(2026, 1, 1), date(2026, 12, 31), "2026-12-31T22:59:59+00:00", True, id="year-last-instant"),
        pytest.param(date(2026, 1, 1), date(2026, 12, 31), "2026-12-31T23:00:00+00:00", False, id="year-after-end"),
        # Summer time starts 2026-03-29 at 02:00 local; ends 2026-10-25 at 03:00 local.
        pytest.param(date(2026, 3, 29), date(2026, 10, 25), "2026-03-28T23:59:59+01:00", False, id="dst-start-day-before"),
        pytest.param(date(2026, 3, 29), date(2026, 10, 25), "2026-03-29T00:00:00+01:00", True, id="dst-start-day-midnight"),
        pytest.param(date(2026, 3, 29), date(2026, 10, 25), "2026-03-29T03:30:00+02:00", True, id="dst-start-day-after-switch"),
        pytest.param(date(2026, 3, 29), date(2026, 10, 25), "2026-10-25T02:30:00+02:00", True, id="dst-end-day-before-switch"),
        pytest.param(date(2026, 3, 29), date(2026, 10, 25), "2026-10-25T23:59:59+01:00", True, id="dst-end-day-last-second"),
        pytest.param(date(2026, 3, 29), date(2026, 10, 25), "2026-10-26T00:00:00+01:00", False, id="dst-end-day-after"),
        # Summer time: UTC is still on the previous day at local midnight.
        pytest.param(date(2026, 7, 1), date(2026, 7, 31), "2026-06-30T21:59:59+00:00", False, id="summer-before"),
        pytest.param(date(2026, 7, 1), date(2026, 7, 31), "2026-06-30T22:00:00+00:00", True, id="summer-first"),
        pytest.param(date(2026, 7, 1), date(2026, 7, 31), "2026-07-31T21:59:59+00:00", True, id="summer-last"),
        pytest.param(date(2026, 7, 1), date(2026, 7, 31), "2026-07-31T22:00:00+00:00", False, id="summer-after"),
    ],
)  # fmt: skip
def test_period_boundaries_in_oslo_time(
    conn: Connection, start: date, end: date, instant: str, active: bool
) -> None:
    org, mentor = _one_mentor_org(conn, start=start, end=end)
    clock = FixedClock(datetime.fromisoformat(instant))
    reevaluate_tiers(conn, clock=clock, organisation_id=org)
    expected = {mentor: 1} if active else {}
    assert assigned_tiers(conn, period_id(org)) == expected


def test_running_twice_gives_one_assignment_and_one_notification(conn: Connection) -> None:
    org, mentor = uuid.uuid4(), uuid.uuid4()
    _setup(conn, org)
    ingest(conn, activity_events(org, mentor, count=15, streak=6), JUNE)
    first = reevaluate_tiers(conn, clock=FixedClock(JUNE), organisation_id=org)
    second = reevaluate_tiers(
        conn, clock=FixedClock(JUNE + timedelta(minutes=15)), organisation_id=org
    )
    third = reevaluate_tiers(
        conn, clock=FixedClock(JUNE + timedelta(minutes=30)), organisation_id=org, full=True
    )

    assert [p.tier for p in first.promotions] == [3]
    assert second.promotions == [] and third.promotions == [] and third.periods[0].full
    assert second.outbox == [] and third.outbox == []
    (assignment,) = conn.execute(
        select(tier_assignments).where(tier_assignments.c.peer_mentor_id == mentor)
    ).all()
    assert assignment.tier == 3 and assignment.assigned_at == JUNE
    assert promotion_keys(conn, mentor) == {f"tier_promoted:{assignment.id}:3": 2}
    payloads = conn.scalars(
        select(notification_outbox.c.payload).where(
            notification_outbox.c.peer_mentor_id == mentor,
            notification_outbox.c.kind == "tier_promoted",
        )
    ).all()
    assert (
        payloads
        == [
            {
                "tier": "gold",
                "tier_level": 3,
                "award_period_id": str(period_id(org)),
                "award_period_name": "2026",
                "assigned_at": JUNE.isoformat(),
            }
        ]
        * 2
    )


def test_the_highest_tier_reached_is_kept_and_each_promotion_notifies(conn: Connection) -> None:
    org, mentor = uuid.uuid4(), uuid.uuid4()
    _setup(conn, org)
    first_batch = activity_events(org, mentor, count=3, streak=2)
    ingest(conn, first_batch, JUNE)
    reevaluate_tiers(conn, clock=FixedClock(JUNE), organisation_id=org)
    (bronze_id,) = conn.scalars(
        select(tier_assignments.c.id).where(tier_assignments.c.peer_mentor_id == mentor)
    ).all()

    later = JUNE + timedelta(days=7)
    more = activity_events(org, mentor, count=6, streak=4, start=MONDAY + timedelta(weeks=2))
    ingest(conn, more, later)
    run = reevaluate_tiers(conn, clock=FixedClock(later), organisation_id=org)
    assert [(p.assignment_id, p.tier) for p in run.promotions] == [(bronze_id, 2)]

    # Deleting activities drops the stats below silver, but silver is kept.
    from tests.helpers import deleted_event

    deletes = [
        deleted_event(
            activity_id=uuid.UUID(e["activity"]["id"]),
            org=org,
            mentor=mentor,
            occurred_at=later + timedelta(days=1),
        )
        for e in more
    ]
    ingest(conn, deletes, later + timedelta(days=1))
    run = reevaluate_tiers(conn, clock=FixedClock(later + timedelta(days=1)), organisation_id=org)
    assert run.promotions == [] and run.periods[0].mentors_evaluated == 1

    assert assigned_tiers(conn, period_id(org)) == {mentor: 2}
    assert promotion_keys(conn, mentor) == {
        f"tier_promoted:{bronze_id}:1": 2,
        f"tier_promoted:{bronze_id}:2": 2,
    }
    assigned_at = conn.scalar(
        select(tier_assignments.c.assigned_at).where(tier_assignments.c.id == bronze_id)
    )
    assert assigned_at == later


def test_promotion_awards_tier_badges_with_their_notifications(conn: Connection) -> None:
    org, mentor = uuid.uuid4(), uuid.uuid4()
    _setup(
        conn,
        org,
        badges=[
            badge(org, "silver-mentor", {"type": "tier", "version": 1, "min_tier": "silver"}),
            badge(org, "gold-mentor", {"type": "tier", "version": 1, "min_tier": "gold"}),
        ],
    )
    ingest(conn, activity_events(org, mentor, count=8, streak=4), JUNE)
    run = reevaluate_tiers(conn, clock=FixedClock(JUNE), organisation_id=org)
    assert [b.code for b in run.awarded] == ["silver-mentor"]
    kinds = conn.execute(
        select(notification_outbox.c.kind, func.count())
        .where(notification_outbox.c.peer_mentor_id == mentor)
        .group_by(notification_outbox.c.kind)
    ).all()
    assert sorted(kinds) == [("badge_earned", 2), ("tier_promoted", 2)]
    assert len(run.outbox) == 4


def test_incremental_runs_look_only_at_changed_mentors(conn: Connection) -> None:
    org, changed, silent = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    _setup(conn, org)
    start = JUNE - timedelta(days=1)
    ingest(conn, [saved_event(org=org, mentor=m, day=MONDAY) for m in (changed, silent)], start)
    first = reevaluate_tiers(conn, clock=FixedClock(JUNE), organisation_id=org)
    assert first.periods[0].full and first.promotions == []

    # The silent mentor's stats change behind the incremental code's back
    # (daily and weekly rows, as the pipeline keeps them; stats_changed_at untouched).
    conn.execute(
        daily_activity_counts.insert(),
        [
            {
                "peer_mentor_id": silent,
                "organisation_id": org,
                "activity_date": MONDAY + timedelta(weeks=w),
                "activity_type": "peer_session",
                "activity_count": 1,
            }
            for w in range(1, 4)
        ],
    )
    conn.execute(
        period_activity_counts.insert(),
        [
            {
                "peer_mentor_id": silent,
                "organisation_id": org,
                "period": "week",
                "period_start": MONDAY + timedelta(weeks=w),
                "activity_type": "peer_session",
                "activity_count": 1,
            }
            for w in range(1, 4)
        ],
    )
    later = JUNE + timedelta(hours=2)
    ingest(
        conn,
        activity_events(org, changed, count=3, streak=3, start=MONDAY + timedelta(weeks=1)),
        later,
    )
    second = reevaluate_tiers(conn, clock=FixedClock(later), organisation_id=org)
    assert not second.periods[0].full and second.periods[0].mentors_evaluated == 1
    assert assigned_tiers(conn, period_id(org)) == {changed: 1}

    # A period date change re-evaluates everyone.
    _setup(conn, org, award_periods=[award_period(org, end=date(2026, 12, 30))])
    third = reevaluate_tiers(
        conn, clock=FixedClock(later + timedelta(minutes=15)), organisation_id=org
    )
    assert third.periods[0].full and third.periods[0].mentors_evaluated == 2
    assert assigned_tiers(conn, period_id(org)) == {changed: 1, silent: 1}


def test_a_tier_threshold_change_re_evaluates_everyone(conn: Connection) -> None:
    org, mentor = uuid.uuid4(), uuid.uuid4()
    _setup(conn, org)
    ingest(conn, activity_events(org, mentor, count=2, streak=2), JUNE - timedelta(days=3))
    reevaluate_tiers(conn, clock=FixedClock(JUNE), organisation_id=org)
    assert assigned_tiers(conn, period_id(org)) == {}

    tiers = _standard_tiers(org)
    tiers[0] = tier(org, "bronze", 2, 2)
    apply(conn, {"tiers": tiers})
    run = reevaluate_tiers(conn, clock=FixedClock(JUNE + timedelta(hours=5)), organisation_id=org)
    assert run.periods[0].full
    assert assigned_tiers(conn, period_id(org)) == {mentor: 1}
    (stored,) = conn.execute(
        select(tier_evaluation_runs).where(tier_evaluation_runs.c.award_period_id == period_id(org))
    ).all()
    assert stored.full_evaluated_at == JUNE + timedelta(hours=5) and stored.promotions == 1


def test_statement_count_does_not_grow_with_mentors(conn: Connection) -> None:
    def statements_for(mentor_count: int) -> tuple[int, int]:
        org = uuid.uuid4()
        _setup(
            conn,
            org,
            badges=[
                badge(org, "bronze-mentor", {"type": "tier", "version": 1, "min_tier": "bronze"})
            ],
        )
        # Set-based fixture: mentors and six weekly days of two sessions each.
        conn.execute(
            text(
                "INSERT INTO mentors (peer_mentor_id, organisation_id, stats_changed_at) "
                "SELECT gen_random_uuid(), :org, :at FROM generate_series(1, :n)"
            ),
            {"org": org, "at": JUNE, "n": mentor_count},
        )
        conn.execute(
            text(
                "INSERT INTO daily_activity_counts "
                "(peer_mentor_id, activity_date, activity_type, organisation_id, activity_count) "
                "SELECT m.peer_mentor_id, CAST(:monday AS date) + 7 * w, 'peer_session', :org, 2 "
                "FROM mentors m CROSS JOIN generate_series(0, 5) AS w WHERE m.organisation_id = :org"
            ),
            {"org": org, "monday": MONDAY},
        )
        conn.execute(
            text(
                "INSERT INTO period_activity_counts (peer_mentor_id, period, period_start, "
                "activity_type, organisation_id, activity_count) "
                "SELECT peer_mentor_id, 'week', activity_date, activity_type, organisation_id, "
                "activity_count FROM daily_activity_counts WHERE organisation_id = :org"
            ),
            {"org": org},
        )
        issued: list[str] = []

        def count(*args: Any) -> None:
            issued.append(args[2])

        event.listen(conn, "before_cursor_execute", count)
        try:
            run = reevaluate_tiers(conn, clock=FixedClock(JUNE), organisation_id=org)
        finally:
            event.remove(conn, "before_cursor_execute", count)
        assert len(run.promotions) == mentor_count and len(run.awarded) == mentor_count
        assert set(assigned_tiers(conn, period_id(org)).values()) == {2}  # silver: 12 in 6 weeks
        return len(issued), mentor_count

    small, _ = statements_for(10)
    large, _ = statements_for(1000)
    assert small == large
    assert small < 25, small


def test_two_concurrent_runs_assign_and_notify_once(clean_db: Engine) -> None:
    org = uuid.uuid4()
    team = [uuid.uuid4() for _ in range(20)]
    with clean_db.begin() as c:
        _setup(
            c,
            org,
            badges=[
                badge(org, "silver-mentor", {"type": "tier", "version": 1, "min_tier": "silver"})
            ],
        )
        ingest(c, [e for m in team for e in activity_events(org, m, count=8, streak=4)], JUNE)

    barrier = threading.Barrier(2)
    results: list[int] = []
    errors: list[BaseException] = []

    def run() -> None:
        try:
            with clean_db.begin() as c:
                barrier.wait(timeout=30)
                outcome = reevaluate_tiers(c, clock=FixedClock(JUNE), organisation_id=org)
                results.append(len(outcome.promotions))
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert errors == [] and len(results) == 2
    assert sum(results) == len(team)  # each promotion reported by exactly one run

    with clean_db.connect() as c:
        assert assigned_tiers(c, period_id(org)) == dict.fromkeys(team, 2)
        keys = promotion_keys(c, org=org)
        assert len(keys) == len(team) and set(keys.values()) == {2}
        awards = c.scalar(
            select(func.count())
            .select_from(earned_badges)
            .where(earned_badges.c.organisation_id == org)
        )
        assert awards == len(team)


def test_reevaluation_runs_on_sqlite(sqlite_engine: Engine) -> None:
    org = uuid.uuid4()
    cases = _threshold_cases()
    mentor_ids = {case: uuid.uuid4() for case, *_ in cases}
    with sqlite_engine.begin() as c:
        config = validate_configuration(
            {
                "organisations": [organisation(org)],
                "tiers": _standard_tiers(org),
                "award_periods": [award_period(org)],
                "badges": [
                    badge(org, "gold-mentor", {"type": "tier", "version": 1, "min_tier": "gold"})
                ],
            }
        )
        apply_configuration(c, config, FixedClock(JUNE))
        ingest(
            c,
            [
                e
                for case, a, s, _ in cases
                for e in activity_events(org, mentor_ids[case], count=a, streak=s)
            ],
            JUNE,
        )
        first = reevaluate_tiers(c, clock=FixedClock(JUNE))
        again = reevaluate_tiers(c, clock=FixedClock(JUNE + timedelta(minutes=15)))
    with sqlite_engine.connect() as c:
        got = assigned_tiers(c, period_id(org))
        assert {case: got.get(mentor_ids[case]) for case, *_ in cases} == {
            case: expected for case, _, _, expected in cases
        }
        ids = c.scalars(select(tier_assignments.c.id)).all()
        assert all(i.version == 4 for i in ids)
        assert len(promotion_keys(c)) == len(first.promotions) == len(got)
    assert again.promotions == []
    gold_or_better = [case for case, _, _, expected in cases if (expected or 0) >= 3]
    assert sorted(b.code for b in first.awarded) == ["gold-mentor"] * len(gold_or_better)


def _date_cases() -> list[date]:
    days = [date(2026, 1, 1) + timedelta(days=n) for n in range(0, 400, 3)]
    return [*days, date(2024, 2, 29), date(2020, 12, 31), date(2021, 1, 3), date(2099, 12, 28)]


@pytest.mark.parametrize("dialect", ["postgresql", "sqlite"])
def test_sql_calendar_arithmetic_matches_python(
    conn: Connection, sqlite_engine: Engine, dialect: str
) -> None:
    days = _date_cases()

    def run(c: Connection) -> list[tuple[Any, ...]]:
        rows = []
        for day in days:
            value = literal(day, Date)
            rows.append(
                tuple(
                    c.execute(
                        select(week_start(c, value), month_start(c, value), week_number(c, value))
                    ).one()
                )
            )
        return rows

    if dialect == "sqlite":
        with sqlite_engine.connect() as c:
            got = run(c)
    else:
        got = run(conn)
    assert [(w, m) for w, m, _ in got] == [
        (period_start(d, Period.WEEK), period_start(d, Period.MONTH)) for d in days
    ]
    week_numbers = [n for _, _, n in got]
    assert week_numbers == [period_start(d, Period.WEEK).toordinal() // 7 for d in days]


def test_mentors_table_is_the_candidate_set(conn: Connection) -> None:
    """Zero thresholds: every known mentor of the organisation qualifies, even idle ones."""
    org, idle = uuid.uuid4(), uuid.uuid4()
    apply(
        conn,
        {
            "organisations": [organisation(org)],
            "tiers": [tier(org, "bronze", 0, 0)],
            "award_periods": [award_period(org)],
        },
    )
    conn.execute(
        mentors.insert().values(peer_mentor_id=idle, organisation_id=org, stats_changed_at=JUNE)
    )
    reevaluate_tiers(conn, clock=FixedClock(JUNE), organisation_id=org)
    assert assigned_tiers(conn, period_id(org)) == {idle: 1}


@pytest.mark.parametrize("dialect", ["postgresql", "sqlite"])
def test_migration_0003_matches_the_table_metadata(
    engine: Engine, sqlite_engine: Engine, dialect: str
) -> None:
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    from schema.tables import metadata

    target = engine if dialect == "postgresql" else sqlite_engine
    with target.connect() as c:
        diffs = compare_metadata(MigrationContext.configure(c), metadata)
    assert [d for d in diffs if "tier_evaluation_runs" in repr(d)] == []


def test_migration_0003_downgrades_and_upgrades_on_sqlite(sqlite_engine: Engine) -> None:
    from sqlalchemy import inspect

    from schema.migrate import current_revision, downgrade

    downgrade(sqlite_engine, "0002")
    assert not inspect(sqlite_engine).has_table("tier_evaluation_runs")
    upgrade(sqlite_engine)
    assert inspect(sqlite_engine).has_table("tier_evaluation_runs")
    assert (current_revision(sqlite_engine) or "") >= "0003"


def test_cli_tiers_evaluate_runs_now_and_dispatches_after_commit(
    clean_db: Engine, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from worker.cli import main
    from worker.core.clock import SystemClock, local_today
    from worker.core.settings import get_settings
    from worker.notifications import dispatch

    dispatched: list[Any] = []

    def capture(refs: Any, **_: Any) -> None:
        # Called after the commit: the promotion is already visible to others.
        with clean_db.connect() as other:
            dispatched.append((list(refs), assigned_tiers(other, period_id(org))))

    monkeypatch.setattr(dispatch, "dispatch_outbox", capture)
    org, mentor = uuid.uuid4(), uuid.uuid4()
    today = local_today(SystemClock(), get_settings().tz)
    with clean_db.begin() as c:
        apply(
            c,
            {
                "organisations": [organisation(org)],
                "tiers": [tier(org, "bronze", 1, 1)],
                "award_periods": [award_period(org, start=today, end=today)],
            },
        )
        ingest(c, [saved_event(org=org, mentor=mentor, day=today)], SystemClock().now())

    assert main(["tiers", "evaluate", "--org", str(org)]) == 0
    out = capsys.readouterr().out
    assert "full, 1 mentor(s) evaluated, 1 promotion(s)" in out
    ((refs, visible),) = dispatched
    assert len(refs) == 2 and visible == {mentor: 1}

    assert main(["tiers", "evaluate", "--org", str(org)]) == 0
    assert "incremental, 1 mentor(s) evaluated, 0 promotion(s)" in capsys.readouterr().out
    assert main(["tiers", "evaluate", "--org", "not-a-uuid"]) == 2
