"""Last-writer-wins resolution of a batch of activity events against the stored ledger rows."""

from __future__ import annotations

import random
import uuid
from datetime import UTC, date, datetime, timedelta
from uuid import UUID

from hypothesis import given
from hypothesis import strategies as st

from worker.model.ledger import LedgerRow, StatsDelta, resolve_batch

ORG, MENTOR, ACTIVITY = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
T0 = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)


def row(
    at: int,
    *,
    deleted: bool = False,
    kind: str | None = "peer_session",
    day: date = date(2026, 3, 2),
    event_id: UUID | None = None,
    activity: UUID = ACTIVITY,
    mentor: UUID = MENTOR,
    org: UUID = ORG,
) -> LedgerRow:
    """A ledger row as an event of minute ``at`` makes it (deletes carry no facts)."""
    return LedgerRow(
        activity_id=activity,
        organisation_id=org,
        peer_mentor_id=mentor,
        activity_type=None if deleted else kind,
        activity_date=None if deleted else day,
        course_id=None,
        occurred_at=T0 + timedelta(minutes=at),
        last_event_id=event_id or uuid.uuid4(),
        deleted=deleted,
    )


def lifetime(delta: StatsDelta) -> dict[str, int]:
    return {kind: n for (_, _, kind), n in delta.lifetime.items()}


def test_a_first_save_is_applied_and_counted() -> None:
    saved = row(0)
    r = resolve_batch({}, [saved])
    assert r.changes == [saved] and r.stale == 0 and r.moved == []
    assert lifetime(r.delta) == {"peer_session": 1}
    assert r.delta.mentors == {MENTOR} and r.delta.decreased_mentors == set()


def test_a_later_save_replaces_the_stored_facts() -> None:
    stored, update = row(0, kind="peer_session"), row(5, kind="phone_call")
    r = resolve_batch({ACTIVITY: stored}, [update])
    assert r.changes == [update]
    assert lifetime(r.delta) == {"peer_session": -1, "phone_call": 1}
    assert r.delta.decreased_mentors == {MENTOR}


def test_an_older_save_than_the_stored_row_is_stale() -> None:
    r = resolve_batch({ACTIVITY: row(5)}, [row(0, kind="phone_call")])
    assert r.changes == [] and r.stale == 1 and not r.delta.lifetime


def test_an_update_that_changes_no_count_leaves_no_zero_entries() -> None:
    r = resolve_batch({ACTIVITY: row(0)}, [row(5)])  # same type and date, later
    assert len(r.changes) == 1
    assert not r.delta.lifetime and not r.delta.daily and not r.delta.periods
    assert r.delta.mentors == set() and r.delta.decreased_mentors == set()


def test_a_delete_leaves_a_tombstone_that_a_stale_save_cannot_revive() -> None:
    deleted = resolve_batch({ACTIVITY: row(0)}, [row(5, deleted=True)])
    (tombstone,) = deleted.changes
    assert tombstone.deleted and lifetime(deleted.delta) == {"peer_session": -1}

    late_save = resolve_batch({ACTIVITY: tombstone}, [row(3)])
    assert late_save.changes == [] and late_save.stale == 1


def test_a_delete_seen_before_the_first_save_keeps_the_activity_deleted() -> None:
    first = resolve_batch({}, [row(5, deleted=True)])
    (tombstone,) = first.changes
    assert tombstone.deleted and not first.delta.lifetime
    assert resolve_batch({ACTIVITY: tombstone}, [row(0)]).changes == []


def test_a_delete_wins_a_tie_on_occurred_at_then_the_event_id_decides() -> None:
    save, delete = row(5), row(5, deleted=True)
    for batch in ([save, delete], [delete, save]):
        (winner,) = resolve_batch({}, batch).changes
        assert winner.deleted
    low, high = sorted([uuid.uuid4(), uuid.uuid4()])
    a, b = row(5, kind="phone_call", event_id=low), row(5, kind="group_meeting", event_id=high)
    for batch in ([a, b], [b, a]):
        (winner,) = resolve_batch({}, batch).changes
        assert winner.activity_type == "group_meeting"


def test_several_events_of_one_activity_in_a_batch_count_the_losers_as_stale() -> None:
    r = resolve_batch({}, [row(1), row(3, kind="phone_call"), row(2)])
    (winner,) = r.changes
    assert winner.activity_type == "phone_call" and r.stale == 2
    assert lifetime(r.delta) == {"phone_call": 1}


def test_an_activity_never_moves_to_another_mentor() -> None:
    stored = row(0)
    r = resolve_batch({ACTIVITY: stored}, [row(5, mentor=uuid.uuid4())])
    assert r.changes == [] and r.moved == [ACTIVITY] and r.stale == 1
    assert not r.delta.lifetime


def test_the_arguments_are_not_changed() -> None:
    stored = {ACTIVITY: row(0)}
    incoming = [row(5, kind="phone_call")]
    before = (dict(stored), list(incoming))
    resolve_batch(stored, incoming)
    assert (stored, incoming) == before


events = st.lists(
    st.tuples(
        st.integers(0, 3),  # activity
        st.integers(0, 5),  # minute
        st.booleans(),  # delete
        st.sampled_from(["peer_session", "phone_call"]),
    ),
    min_size=1,
    max_size=8,
)
ACTIVITIES = [uuid.uuid4() for _ in range(4)]


@given(events, st.randoms())
def test_one_batch_equals_any_order_of_single_deliveries(
    spec: list[tuple[int, int, bool, str]], rnd: random.Random
) -> None:
    rows = [row(m, deleted=d, kind=k, activity=ACTIVITIES[a]) for a, m, d, k in spec]
    batch = resolve_batch({}, rows)

    shuffled = list(rows)
    rnd.shuffle(shuffled)
    ledger: dict[UUID, LedgerRow] = {}
    total = StatsDelta.empty()
    for one in shuffled:
        r = resolve_batch(ledger, [one])
        for changed in r.changes:
            ledger[changed.activity_id] = changed
        total.lifetime.update(r.delta.lifetime)
        total.daily.update(r.delta.daily)
        total.periods.update(r.delta.periods)
        total.courses.update(r.delta.courses)

    assert {c.activity_id: c for c in batch.changes} == ledger
    assert batch.delta == total.pruned()
    # Live rows counted once each: the final counts equal the live winners.
    live = [c for c in batch.changes if c.live]
    assert sum(batch.delta.lifetime.values()) == len(live)
    assert all(n > 0 for n in batch.delta.lifetime.values())
    assert batch.stale == len(rows) - len(batch.changes)
