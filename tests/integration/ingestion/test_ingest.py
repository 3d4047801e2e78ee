"""The ingestion unit of work on PostgreSQL: idempotence, ordering, revocation, awards."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import Connection, event, func, select

from schema.tables import (
    activity_ledger,
    badge_audit,
    daily_activity_counts,
    earned_badges,
    mentor_activity_counts,
    notification_outbox,
    period_activity_counts,
)
from tests.helpers import BASE_TIME, badge, deleted_event, saved_event, streak, threshold, weeks
from tests.integration.harness import apply, organisation
from worker.badges.awards import (
    MAX_PAGE_SIZE,
    InvalidCursor,
    award_badge,
    get_definition_by_code,
    get_earned,
    get_earned_badges,
)
from worker.badges.evaluation import evaluate_mentors
from worker.core.clock import FixedClock
from worker.ingestion.ingest import IncomingEvent, IngestResult, ingest_events

CLOCK = FixedClock(datetime(2026, 6, 1, 12, tzinfo=UTC))


def ingest(conn: Connection, *events: dict[str, Any]) -> IngestResult:
    return ingest_events(conn, [IncomingEvent(e) for e in events], clock=CLOCK)


def setup_org(conn: Connection, *badges: dict[str, Any]) -> uuid.UUID:
    org = uuid.UUID(badges[0]["organisation_id"]) if badges else uuid.uuid4()
    apply(conn, {"organisations": [organisation(org)], "badges": list(badges)})
    return org


def earned_codes(conn: Connection, mentor: uuid.UUID) -> set[str]:
    from schema.tables import badge_definitions as bd

    return set(
        conn.scalars(
            select(bd.c.code)
            .join(earned_badges, earned_badges.c.badge_definition_id == bd.c.id)
            .where(earned_badges.c.peer_mentor_id == mentor)
        )
    )


def lifetime(conn: Connection, mentor: uuid.UUID) -> dict[str, int]:
    t = mentor_activity_counts
    return {
        r[0]: r[1]
        for r in conn.execute(
            select(t.c.activity_type, t.c.activity_count).where(t.c.peer_mentor_id == mentor)
        )
    }


def test_first_award_then_award_again_returns_the_same_row(conn: Connection) -> None:
    org = uuid.uuid4()
    setup_org(conn, badge(org, "first", threshold(1)))
    definition = get_definition_by_code(conn, org, "first")
    mentor = uuid.uuid4()
    first = award_badge(conn, definition.id, mentor, now=CLOCK.now())
    again = award_badge(conn, definition.id, mentor, now=CLOCK.now() + timedelta(days=1))
    assert first.created and not again.created
    assert again.earned == first.earned
    assert get_earned(conn, definition.id, mentor) is not None
    assert conn.execute(select(func.count()).select_from(earned_badges).where(
        earned_badges.c.peer_mentor_id == mentor)).scalar_one() == 1  # fmt: skip
    audit = conn.execute(
        select(badge_audit.c.action).where(badge_audit.c.peer_mentor_id == mentor)
    ).all()
    assert [a.action for a in audit] == ["manual_award"]


@pytest.mark.usefixtures("push_enabled")  # both channels' rows
def test_an_event_crossing_a_threshold_awards_once_with_outbox_rows(conn: Connection) -> None:
    org = uuid.uuid4()
    setup_org(conn, badge(org, "three", threshold(3, "peer_session")))
    mentor = uuid.uuid4()
    results = [ingest(conn, saved_event(org=org, mentor=mentor)) for _ in range(4)]
    assert [len(r.awarded) for r in results] == [0, 0, 1, 0]
    assert earned_codes(conn, mentor) == {"three"}
    channels = conn.scalars(
        select(notification_outbox.c.channel).where(notification_outbox.c.peer_mentor_id == mentor)
    ).all()
    assert sorted(channels) == ["in_app", "push"]
    assert {r.channel for r in results[2].outbox} == {"in_app", "push"}


@pytest.mark.parametrize("copies", [2, 3, 10])
def test_the_same_event_delivered_many_times_counts_once(conn: Connection, copies: int) -> None:
    org = setup_org(conn)
    mentor = uuid.uuid4()
    e = saved_event(org=org, mentor=mentor)
    results = [ingest(conn, e) for _ in range(copies - 1)] + [ingest(conn, *([e] * 3))]
    assert lifetime(conn, mentor) == {"peer_session": 1}
    assert sum(r.applied for r in results) == 1
    assert sum(r.duplicates for r in results) == copies - 1 + 2


def test_an_update_then_the_stale_original_keeps_the_update(conn: Connection) -> None:
    org, mentor, activity = setup_org(conn), uuid.uuid4(), uuid.uuid4()
    original = saved_event(org=org, mentor=mentor, activity_id=activity, activity_type="phone_call",
                           occurred_at=BASE_TIME)  # fmt: skip
    update = saved_event(org=org, mentor=mentor, activity_id=activity, activity_type="peer_session",
                         occurred_at=BASE_TIME + timedelta(minutes=5))  # fmt: skip
    ingest(conn, update)
    stale = ingest(conn, original)
    assert stale.stale == 1 and stale.applied == 0
    assert lifetime(conn, mentor) == {"peer_session": 1}


def test_a_delete_then_a_stale_save_stays_deleted(conn: Connection) -> None:
    org, mentor, activity = setup_org(conn), uuid.uuid4(), uuid.uuid4()
    save = saved_event(org=org, mentor=mentor, activity_id=activity, occurred_at=BASE_TIME)
    delete = deleted_event(
        activity_id=activity, org=org, mentor=mentor, occurred_at=BASE_TIME + timedelta(hours=1)
    )
    ingest(conn, delete)  # the delete arrives first: a tombstone is kept
    ingest(conn, save)
    assert lifetime(conn, mentor) == {}
    row = conn.execute(
        select(activity_ledger).where(activity_ledger.c.activity_id == activity)
    ).one()
    assert row.deleted is True


def test_an_update_moves_counts_to_the_new_date_and_type(conn: Connection) -> None:
    org, mentor, activity = setup_org(conn), uuid.uuid4(), uuid.uuid4()
    ingest(conn, saved_event(org=org, mentor=mentor, activity_id=activity, day=date(2026, 3, 2)))
    ingest(conn, saved_event(org=org, mentor=mentor, activity_id=activity, activity_type="phone_call",
                             day=date(2026, 3, 20), occurred_at=BASE_TIME + timedelta(hours=1)))  # fmt: skip
    d = daily_activity_counts
    daily = conn.execute(select(d.c.activity_date, d.c.activity_type, d.c.activity_count)
                         .where(d.c.peer_mentor_id == mentor)).all()  # fmt: skip
    assert [tuple(r) for r in daily] == [(date(2026, 3, 20), "phone_call", 1)]
    assert lifetime(conn, mentor) == {"phone_call": 1}


def test_moving_an_activity_across_a_week_boundary_joins_and_breaks_a_streak(
    conn: Connection,
) -> None:
    org = uuid.uuid4()
    setup_org(conn, badge(org, "three-weeks", streak("week", 3), revocable=True))
    mentor = uuid.uuid4()
    mondays = weeks(date(2026, 3, 2), 4)
    ingest(conn, saved_event(org=org, mentor=mentor, day=mondays[0]))
    ingest(conn, saved_event(org=org, mentor=mentor, day=mondays[1]))
    movable = uuid.uuid4()
    # In week 4: a gap at week 3, no streak of three yet.
    ingest(
        conn,
        saved_event(
            org=org, mentor=mentor, activity_id=movable, day=mondays[3] + timedelta(days=1)
        ),
    )
    assert earned_codes(conn, mentor) == set()
    # Moved back to the Sunday of week 3: weeks 1-2-3 join into a streak of three.
    joined = ingest(conn, saved_event(org=org, mentor=mentor, activity_id=movable,
                                      day=mondays[3] - timedelta(days=1), occurred_at=BASE_TIME + timedelta(hours=1)))  # fmt: skip
    assert [e.code for e in joined.awarded] == ["three-weeks"]
    # Moved again to the Monday of week 4: the streak breaks and the revocable badge goes.
    broken = ingest(conn, saved_event(org=org, mentor=mentor, activity_id=movable,
                                      day=mondays[3], occurred_at=BASE_TIME + timedelta(hours=2)))  # fmt: skip
    assert [e.code for e in broken.revoked] == ["three-weeks"]
    assert earned_codes(conn, mentor) == set()
    audit = conn.execute(select(badge_audit).where(badge_audit.c.peer_mentor_id == mentor)).one()
    assert (audit.action, audit.actor, audit.reason) == (
        "revoked",
        "evaluation",
        "criteria no longer met",
    )
    assert audit.earned_at == joined.awarded[0].earned_at


def test_only_revocable_definitions_are_revoked(conn: Connection) -> None:
    org = uuid.uuid4()
    setup_org(
        conn, badge(org, "keep", threshold(2)), badge(org, "lose", threshold(2), revocable=True)
    )
    mentor, activity = uuid.uuid4(), uuid.uuid4()
    ingest(conn, saved_event(org=org, mentor=mentor, activity_id=activity),
           saved_event(org=org, mentor=mentor))  # fmt: skip
    assert earned_codes(conn, mentor) == {"keep", "lose"}
    result = ingest(conn, deleted_event(activity_id=activity, org=org, mentor=mentor,
                                        occurred_at=BASE_TIME + timedelta(days=1)))  # fmt: skip
    assert [e.code for e in result.revoked] == ["lose"]
    assert earned_codes(conn, mentor) == {"keep"}
    actions = conn.scalars(
        select(badge_audit.c.action).where(badge_audit.c.peer_mentor_id == mentor)
    ).all()
    assert actions == ["revoked"]


def test_rechecking_revokes_only_revocable_badges_no_longer_met(conn: Connection) -> None:
    org = uuid.uuid4()
    setup_org(
        conn, badge(org, "fixed", threshold(5)), badge(org, "flex", threshold(5), revocable=True)
    )
    mentor = uuid.uuid4()
    fixed = get_definition_by_code(conn, org, "fixed")
    flex = get_definition_by_code(conn, org, "flex")
    award_badge(conn, fixed.id, mentor, now=CLOCK.now())
    award_badge(conn, flex.id, mentor, now=CLOCK.now())
    result = evaluate_mentors(conn, {mentor: org}, now=CLOCK.now(), recheck_revocable={mentor})
    assert [e.badge_definition_id for e in result.revoked] == [flex.id]
    assert earned_codes(conn, mentor) == {"fixed"}


def test_raw_and_disabled_definitions_are_never_awarded_automatically(conn: Connection) -> None:
    org = uuid.uuid4()
    setup_org(
        conn,
        badge(org, "raw", {"type": "raw", "version": 1, "raw": {"note": "by hand"}}),
        badge(org, "off", threshold(1), enabled=False),
        badge(org, "on", threshold(1)),
    )
    mentor = uuid.uuid4()
    ingest(conn, saved_event(org=org, mentor=mentor))
    assert earned_codes(conn, mentor) == {"on"}


def test_training_completion_and_tier_free_streak_of_months(conn: Connection) -> None:
    org = uuid.uuid4()
    setup_org(
        conn,
        badge(
            org, "trained", {"type": "training_completion", "version": 1, "course_ids": ["a", "b"]}
        ),
        badge(org, "season", streak("month", 3, "peer_session")),
    )
    mentor = uuid.uuid4()
    ingest(
        conn, saved_event(org=org, mentor=mentor, activity_type="training_completed", course_id="a")
    )
    for day in (date(2026, 1, 31), date(2026, 2, 1), date(2026, 3, 31)):
        ingest(conn, saved_event(org=org, mentor=mentor, day=day))
    assert earned_codes(conn, mentor) == {"season"}
    ingest(
        conn, saved_event(org=org, mentor=mentor, activity_type="training_completed", course_id="b")
    )
    assert earned_codes(conn, mentor) == {"season", "trained"}


def test_earned_badges_pages_by_keyset_and_caps_the_page_size(conn: Connection) -> None:
    org = uuid.uuid4()
    setup_org(conn, *[badge(org, f"b{i:02d}", threshold(1)) for i in range(5)])
    mentor = uuid.uuid4()
    ingest(conn, saved_event(org=org, mentor=mentor))
    seen, cursor = [], None
    while True:
        page = get_earned_badges(
            conn, organisation_id=org, mentor_id=mentor, limit=2, cursor=cursor
        )
        seen += [b.code for b in page.items]
        cursor = page.next_cursor
        if cursor is None:
            break
    assert sorted(seen) == [f"b{i:02d}" for i in range(5)] and len(seen) == 5
    assert len(get_earned_badges(conn, organisation_id=org, limit=10_000).items) == 5
    assert get_earned_badges(conn, organisation_id=uuid.uuid4(), mentor_id=mentor).items == []
    assert MAX_PAGE_SIZE == 200
    with pytest.raises(InvalidCursor):
        get_earned_badges(conn, organisation_id=org, cursor="garbage!")


def test_unknown_organisation_is_quarantined(conn: Connection) -> None:
    result = ingest(conn, saved_event(org=uuid.uuid4(), mentor=uuid.uuid4()))
    assert (result.quarantined, result.applied) == (1, 0)


def test_one_more_event_for_a_mentor_with_5000_activities_reads_only_that_activity(
    conn: Connection,
) -> None:
    org = uuid.uuid4()
    setup_org(
        conn,
        badge(org, "ten-thousand", threshold(10_000)),
        badge(org, "long-run", streak("week", 400)),
        badge(org, "monthly", streak("month", 100, "phone_call")),
    )
    mentor = uuid.uuid4()
    start = date(2024, 1, 1)
    history = [
        saved_event(org=org, mentor=mentor, day=start + timedelta(days=i % 700),
                    activity_type=("peer_session", "phone_call")[i % 2])
        for i in range(5000)
    ]  # fmt: skip
    ingest(conn, *history)
    assert sum(lifetime(conn, mentor).values()) == 5000

    statements: list[tuple[str, Any]] = []

    def capture(_conn: Any, _cursor: Any, statement: str, parameters: Any, *_: Any) -> None:
        statements.append((statement, parameters))

    new_activity = uuid.uuid4()
    event.listen(conn, "before_cursor_execute", capture)
    try:
        ingest(
            conn,
            saved_event(org=org, mentor=mentor, activity_id=new_activity, day=date(2026, 1, 5)),
        )
    finally:
        event.remove(conn, "before_cursor_execute", capture)

    ledger_reads = [(s, p) for s, p in statements if "FROM activity_ledger" in s]
    assert len(ledger_reads) == 1
    sql, params = ledger_reads[0]
    assert "activity_ledger.activity_id IN" in sql
    assert list(params.values()) == [[new_activity]] or list(params.values()) == [new_activity]
    for sql, _ in statements:
        assert "FROM daily_activity_counts" not in sql, "streaks must not scan daily history"
    # Streak evaluation reads distinct active periods: weeks and months, not activities.
    with conn.begin_nested():
        p = period_activity_counts
        periods = conn.execute(
            select(func.count()).select_from(p).where(p.c.peer_mentor_id == mentor)
        ).scalar_one()
    assert periods < 5000 / 2
    assert len(statements) < 40
