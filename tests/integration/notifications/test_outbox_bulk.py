"""The outbox writer's set-based PostgreSQL path writes exactly the rows of its row-by-row path."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import Connection, select

from schema.tables import notification_outbox
from tests.helpers import badge, threshold
from tests.integration.harness import apply, organisation
from worker.badges.awards import get_definition_by_code, insert_awards
from worker.notifications import outbox
from worker.notifications.types import Channel, OutboxRef

NOW = datetime(2026, 3, 2, 9, 30, 0, 123456, tzinfo=UTC)


def outbox_rows(conn: Connection, refs: list[OutboxRef]) -> tuple[list[Any], set[Any]]:
    """Every outbox row of the test (without its random id), and what the refs point at."""
    rows = conn.execute(select(notification_outbox)).mappings().all()
    by_id = {row["id"]: row for row in rows}
    pointed = {(by_id[r.id]["dedup_key"], by_id[r.id]["channel"], r.channel) for r in refs}
    return sorted(
        (tuple((k, v) for k, v in row.items() if k != "id") for row in rows), key=str
    ), pointed


@pytest.mark.parametrize("push", [True, False])
@pytest.mark.parametrize("backfill", [True, False])
def test_bulk_rows_equal_the_row_by_row_ones(conn: Connection, backfill: bool, push: bool) -> None:
    org = uuid.uuid4()
    apply(conn, {"organisations": [organisation(org)],
                 "badges": [badge(org, "one", threshold(1)), badge(org, "two", threshold(2)),
                            {**badge(org, "quote", threshold(3)), "name": "It's \"quoted\" ÆØÅ"}]})  # fmt: skip
    conn.execute(notification_outbox.delete())  # only this test's rows are compared
    definitions = [get_definition_by_code(conn, org, code) for code in ("one", "two", "quote")]
    mentors = [uuid.uuid4() for _ in range(4)]
    awards = insert_awards(conn, [(d, m) for d in definitions for m in mentors], NOW, "backfill")
    assert len(awards) == 12

    written = []
    channels = (Channel.IN_APP, Channel.PUSH) if push else (Channel.IN_APP,)
    notifications = [outbox.badge_earned(e) for e in awards]
    for write in (outbox._write_rows, outbox._write_postgres):
        savepoint = conn.begin_nested()
        refs = write(conn, notifications, now=NOW, backfill=backfill, channels=channels)
        written.append(outbox_rows(conn, refs))
        # Writing the same awards again adds nothing and dispatches nothing.
        assert write(conn, notifications, now=NOW, backfill=backfill, channels=channels) == []
        savepoint.rollback()

    (old_rows, old_refs), (new_rows, new_refs) = written
    assert len(new_rows) == (24 if push else 12)
    assert new_rows == old_rows
    assert new_refs == old_refs
    assert len(new_refs) == (24 if push and not backfill else 12)
    assert all(channel == ref_channel for _, channel, ref_channel in new_refs)
    assert outbox.write_outbox(conn, [], now=NOW, backfill=backfill) == []


def test_push_rows_are_written_only_while_a_push_gateway_is_configured(
    conn: Connection,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    request: pytest.FixtureRequest,
) -> None:
    org = uuid.uuid4()
    apply(conn, {"organisations": [organisation(org)], "badges": [badge(org, "one", threshold(1))]})
    conn.execute(notification_outbox.delete())
    definition = get_definition_by_code(conn, org, "one")
    first, second = (
        outbox.badge_earned(e)
        for e in insert_awards(conn, [(definition, uuid.uuid4()) for _ in range(2)], NOW, "manual")
    )
    monkeypatch.setattr(outbox, "_push_off_logged", False)

    with caplog.at_level("INFO", logger=outbox.__name__):
        assert [r.channel for r in outbox.write_outbox(conn, [first], now=NOW)] == ["in_app"]
        outbox.write_outbox(conn, [first], now=NOW)
    disabled = [r for r in caplog.records if "push channel disabled" in r.getMessage()]
    assert len(disabled) == 1  # said once per process, not once per write

    request.getfixturevalue("push_enabled")
    refs = outbox.write_outbox(conn, [second], now=NOW)
    assert sorted(r.channel for r in refs) == ["in_app", "push"]
    rows = conn.execute(
        select(notification_outbox.c.dedup_key, notification_outbox.c.channel)
    ).all()
    assert sorted(rows) == sorted(
        [(first.dedup_key, "in_app"), (second.dedup_key, "in_app"), (second.dedup_key, "push")]
    )
