"""``badges import activities``: validated, streamed, idempotent, backfill-flagged."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, func, select

from schema.tables import (
    activity_ledger,
    daily_activity_counts,
    earned_badges,
    mentor_activity_counts,
    notification_outbox,
    period_activity_counts,
)
from tests.helpers import badge, saved_event, streak, threshold
from tests.integration.conftest import apply, organisation
from worker.cli import main
from worker.clock import FixedClock
from worker.db import unit_of_work
from worker.ingest import IncomingEvent, ingest_events


def activity(
    org: uuid.UUID, mentor: uuid.UUID, day: date, kind: str = "peer_session"
) -> dict[str, Any]:
    return {
        "id": str(uuid.uuid4()),
        "organisation_id": str(org),
        "peer_mentor_id": str(mentor),
        "activity_type": kind,
        "activity_date": day.isoformat(),
        "course_id": None,
    }


def write_lines(path: Path, rows: list[Any]) -> Path:
    path.write_text("\n".join(r if isinstance(r, str) else json.dumps(r) for r in rows) + "\n")
    return path


def snapshot(engine: Engine, mentors: list[uuid.UUID]) -> dict[str, Any]:
    with engine.connect() as c:

        def rows(table: Any) -> list[tuple[Any, ...]]:
            # Delivery progress (a running worker may deliver in-app rows
            # between the two imports) is not a change made by the import.
            moving = {"updated_at", "stats_changed_at", "state", "attempts", "last_error",
                      "dispatched_at", "delivered_at"}  # fmt: skip
            cols = [col for col in table.c if col.name not in moving]
            return sorted(
                tuple(map(str, r))
                for r in c.execute(select(*cols).where(table.c.peer_mentor_id.in_(mentors)))
            )

        return {
            t.name: rows(t)
            for t in (activity_ledger, mentor_activity_counts, daily_activity_counts,
                      period_activity_counts, earned_badges, notification_outbox)
        }  # fmt: skip


def test_import_builds_stats_awards_as_backfill_and_is_idempotent(
    engine: Engine, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    org = uuid.uuid4()
    apply(
        engine,
        {"organisations": [organisation(org)],
         "badges": [badge(org, "ten", threshold(10)), badge(org, "weekly-5", streak("week", 5))]},
    )  # fmt: skip
    keen, casual = uuid.uuid4(), uuid.uuid4()
    rows = [activity(org, keen, date(2024, 1, 1) + timedelta(weeks=i)) for i in range(12)]
    rows += [activity(org, casual, date(2024, 3, 1) + timedelta(days=i)) for i in range(3)]
    rows.append(rows[0])  # the same activity twice in a file counts once
    path = write_lines(tmp_path / "history.jsonl", rows)

    assert main(["import", "activities", str(path), "--chunk-size", "5"]) == 0
    assert (
        "imported 15 new activit(ies), 1 already present; 2 badge(s) awarded"
        in capsys.readouterr().out
    )
    first = snapshot(engine, [keen, casual])
    with engine.connect() as c:
        sources = (
            c.execute(
                select(earned_badges.c.award_source).where(earned_badges.c.peer_mentor_id == keen)
            )
            .scalars()
            .all()
        )
        outbox = c.execute(select(notification_outbox.c.channel, notification_outbox.c.state, notification_outbox.c.backfill)
                           .where(notification_outbox.c.peer_mentor_id == keen)).all()  # fmt: skip
        lifetime = c.execute(select(func.sum(mentor_activity_counts.c.activity_count))
                             .where(mentor_activity_counts.c.peer_mentor_id.in_([keen, casual]))).scalar_one()  # fmt: skip
    assert sources == ["backfill", "backfill"]
    assert (
        sorted((o.channel, o.backfill) for o in outbox)
        == [("in_app", True)] * 2 + [("push", True)] * 2
    )
    assert {o.state for o in outbox if o.channel == "push"} == {"skipped"}
    assert lifetime == 15

    assert main(["import", "activities", str(path)]) == 0
    assert (
        "imported 0 new activit(ies), 15 already present; 0 badge(s) awarded"
        in capsys.readouterr().out
    )
    assert snapshot(engine, [keen, casual]) == first


def test_a_live_update_wins_over_imported_history(engine: Engine, tmp_path: Path) -> None:
    org, mentor = uuid.uuid4(), uuid.uuid4()
    apply(engine, {"organisations": [organisation(org)]})
    old = activity(org, mentor, date(2023, 5, 1), "phone_call")
    assert main(["import", "activities", str(write_lines(tmp_path / "h.jsonl", [old]))]) == 0
    update = saved_event(org=org, mentor=mentor, activity_id=uuid.UUID(old["id"]),
                         activity_type="peer_session", day=date(2023, 5, 2))  # fmt: skip
    with unit_of_work(engine) as conn:
        ingest_events(
            conn, [IncomingEvent(update)], clock=FixedClock(datetime(2026, 1, 1, tzinfo=UTC))
        )
    assert main(["import", "activities", str(tmp_path / "h.jsonl")]) == 0  # re-import: no effect
    with engine.connect() as c:
        counts = dict(c.execute(select(mentor_activity_counts.c.activity_type, mentor_activity_counts.c.activity_count)
                                .where(mentor_activity_counts.c.peer_mentor_id == mentor)).all())  # fmt: skip
    assert counts == {"peer_session": 1}


def test_invalid_lines_or_unknown_organisations_import_nothing(
    engine: Engine, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    org, mentor = uuid.uuid4(), uuid.uuid4()
    apply(engine, {"organisations": [organisation(org)]})
    good = activity(org, mentor, date(2024, 1, 1))
    bad_date = {**activity(org, mentor, date(2024, 1, 2)), "activity_date": "2024-13-01"}
    stranger = activity(uuid.uuid4(), mentor, date(2024, 1, 3))
    path = write_lines(tmp_path / "bad.jsonl", [good, bad_date, "{not json"])
    assert main(["import", "activities", str(path)]) == 2
    err = capsys.readouterr().err
    assert "nothing imported" in err and "line 2: activity_date" in err and "line 3:" in err
    assert (
        main(["import", "activities", str(write_lines(tmp_path / "org.jsonl", [good, stranger]))])
        == 2
    )
    assert f"line 2: unknown organisation {stranger['organisation_id']}" in capsys.readouterr().err
    with engine.connect() as c:
        assert c.execute(select(func.count()).select_from(activity_ledger)
                         .where(activity_ledger.c.peer_mentor_id == mentor)).scalar_one() == 0  # fmt: skip
