"""``badges import activities``: validated, streamed, idempotent, backfill-flagged."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Connection, Engine, func, select, text

from schema.tables import (
    activity_ledger,
    badge_audit,
    completed_courses,
    daily_activity_counts,
    earned_badges,
    mentor_activity_counts,
    notification_outbox,
    period_activity_counts,
)
from tests.helpers import badge, saved_event, streak, threshold
from tests.integration.harness import apply, organisation
from worker.cli import main
from worker.core.clock import FixedClock, SystemClock
from worker.db.unit_of_work import unit_of_work
from worker.ingestion import history_import
from worker.ingestion.history_import import HISTORY_OCCURRED_AT
from worker.ingestion.ingest import IncomingEvent, ingest_events
from worker.ingestion.reconcile import reconcile
from worker.ingestion.staging import IMPORT_NAMESPACE


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


@pytest.mark.usefixtures("push_enabled")  # both channels' rows
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
        "imported 15 new activit(ies), 0 already present, 1 repeated line(s) ignored; "
        "2 badge(s) awarded" in capsys.readouterr().out
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
        audited = c.execute(select(func.count()).select_from(badge_audit)
                            .where(badge_audit.c.peer_mentor_id == keen)).scalar_one()  # fmt: skip
    assert sources == ["backfill", "backfill"]
    assert audited == 0  # imported awards are backfill awards, not audited changes
    assert (
        sorted((o.channel, o.backfill) for o in outbox)
        == [("in_app", True)] * 2 + [("push", True)] * 2
    )
    assert {o.state for o in outbox if o.channel == "push"} == {"skipped"}
    assert lifetime == 15

    assert main(["import", "activities", str(path)]) == 0
    assert (
        "imported 0 new activit(ies), 15 already present, 1 repeated line(s) ignored; "
        "0 badge(s) awarded" in capsys.readouterr().out
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


def staging_tables(engine: Engine) -> list[str]:
    """Import staging tables left in the database (any session's)."""
    with engine.connect() as c:
        return list(
            c.scalars(
                text(
                    "SELECT relname FROM pg_class WHERE relname IN ('import_staging', 'import_new')"
                )
            )
        )


def test_many_groups_load_in_a_pipeline_first_line_wins_and_reconcile_agrees(
    engine: Engine, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    org = uuid.uuid4()
    apply(
        engine,
        {"organisations": [organisation(org)],
         "badges": [badge(org, "three", threshold(3)), badge(org, "weekly-4", streak("week", 4))]},
    )  # fmt: skip
    mentors = sorted(uuid.uuid4() for _ in range(30))
    rows = [
        activity(org, m, date(2024, 1, 1) + timedelta(weeks=i))
        for i in range(4)
        for m in mentors  # each mentor's lines are spread over the whole file
    ]
    # The same activity again on a later line, under the last mentor (another
    # group): the first line counts.
    rows.append({**rows[0], "peer_mentor_id": str(mentors[-1]), "activity_type": "phone_call"})
    path = write_lines(tmp_path / "many.jsonl", rows)

    # About 8 rows per transaction: groups of two mentors, 15 groups.
    assert main(["import", "activities", str(path), "--chunk-size", "8"]) == 0
    out = capsys.readouterr().out
    assert "121 line(s); imported 120 new activit(ies), 0 already present, 1 repeated" in out
    assert "60 badge(s) awarded" in out
    assert staging_tables(engine) == []
    with engine.connect() as c:
        owner = c.execute(select(activity_ledger.c.peer_mentor_id, activity_ledger.c.activity_type)
                          .where(activity_ledger.c.activity_id == uuid.UUID(rows[0]["id"]))).one()  # fmt: skip
        awarded = c.execute(select(earned_badges.c.peer_mentor_id, func.count())
                            .where(earned_badges.c.peer_mentor_id.in_(mentors))
                            .group_by(earned_badges.c.peer_mentor_id)).all()  # fmt: skip
        in_app = c.execute(select(func.count()).select_from(notification_outbox)
                           .where(notification_outbox.c.peer_mentor_id.in_(mentors),
                                  notification_outbox.c.channel == "in_app",
                                  notification_outbox.c.backfill.is_(True))).scalar_one()  # fmt: skip
    assert tuple(owner) == (mentors[0], "peer_session")
    assert sorted(awarded) == sorted((m, 2) for m in mentors)  # every mentor evaluated
    assert in_app == 60
    with unit_of_work(engine) as conn:
        assert reconcile(conn, clock=SystemClock(), repair=False).total == 0
    first = snapshot(engine, mentors)
    assert main(["import", "activities", str(path), "--chunk-size", "8"]) == 0
    assert "imported 0 new activit(ies), 120 already present" in capsys.readouterr().out
    assert snapshot(engine, mentors) == first


def test_an_invalid_line_after_many_valid_ones_writes_nothing(
    engine: Engine, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    org = uuid.uuid4()
    apply(
        engine, {"organisations": [organisation(org)], "badges": [badge(org, "one", threshold(1))]}
    )
    mentors = [uuid.uuid4() for _ in range(50)]
    rows = [
        activity(org, mentors[i % 50], date(2025, 1, 1) + timedelta(days=i)) for i in range(150)
    ]
    course_less = {
        **activity(org, mentors[0], date(2025, 9, 1)),
        "activity_type": "training_completed",
    }
    path = write_lines(tmp_path / "late.jsonl", [*rows, course_less, *rows[:10]])

    assert main(["import", "activities", str(path), "--chunk-size", "10"]) == 2
    assert (
        "line 151: value: a training_completed activity needs a course_id"
        in capsys.readouterr().err
    )
    assert staging_tables(engine) == []
    with engine.connect() as c:
        written = c.execute(select(func.count()).select_from(activity_ledger)
                            .where(activity_ledger.c.peer_mentor_id.in_(mentors))).scalar_one()  # fmt: skip
        earned = c.execute(select(func.count()).select_from(earned_badges)
                           .where(earned_badges.c.peer_mentor_id.in_(mentors))).scalar_one()  # fmt: skip
    assert (written, earned) == (0, 0)
    # The same engine (and its pooled connections) imports the valid part.
    assert main(["import", "activities", str(write_lines(tmp_path / "ok.jsonl", rows))]) == 0
    assert "imported 150 new activit(ies)" in capsys.readouterr().out


def test_course_ids_and_event_ids_reach_the_ledger_unchanged(
    engine: Engine, tmp_path: Path
) -> None:
    org, mentor = uuid.uuid4(), uuid.uuid4()
    apply(engine, {"organisations": [organisation(org)]})
    awkward = "C:\\courses\tfirst aid\nday 1 \\N æøå"  # COPY's special characters
    rows = [
        {**activity(org, mentor, date(2024, 2, 1), "training_completed"), "course_id": awkward},
        {**activity(org, mentor, date(2024, 2, 2), "training_completed"), "course_id": "plain"},
    ]
    assert main(["import", "activities", str(write_lines(tmp_path / "c.jsonl", rows))]) == 0
    with engine.connect() as c:
        stored = c.execute(
            select(activity_ledger.c.activity_id, activity_ledger.c.course_id,
                   activity_ledger.c.last_event_id, activity_ledger.c.occurred_at)
            .where(activity_ledger.c.peer_mentor_id == mentor)
        ).all()  # fmt: skip
        courses = c.scalars(select(completed_courses.c.course_id)
                            .where(completed_courses.c.peer_mentor_id == mentor)).all()  # fmt: skip
    assert sorted(r.course_id for r in stored) == sorted([awkward, "plain"])
    assert sorted(courses) == sorted([awkward, "plain"])
    for row in stored:
        assert row.last_event_id == uuid.uuid5(IMPORT_NAMESPACE, str(row.activity_id))
        assert row.occurred_at == HISTORY_OCCURRED_AT


def test_an_empty_file_imports_nothing(
    engine: Engine, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "empty.jsonl"
    path.write_text("\n\n")
    assert main(["import", "activities", str(path)]) == 0
    assert (
        "0 line(s); imported 0 new activit(ies), 0 already present; 0 badge(s) awarded"
        in capsys.readouterr().out
    )
    assert staging_tables(engine) == []


def test_a_failing_group_stops_the_pipeline_and_a_rerun_completes_the_import(
    engine: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    org = uuid.uuid4()
    apply(
        engine, {"organisations": [organisation(org)], "badges": [badge(org, "two", threshold(2))]}
    )
    mentors = sorted(uuid.uuid4() for _ in range(6))
    rows = [
        activity(org, m, date(2024, 4, 1) + timedelta(days=i)) for i in range(2) for m in mentors
    ]
    path = write_lines(tmp_path / "fail.jsonl", rows)
    real_load_group = history_import._load_group
    calls = []

    def load_group(conn: Connection, first: uuid.UUID, last: uuid.UUID, *, now: datetime) -> Any:
        calls.append(first)
        if len(calls) == 3:  # in the loader thread, while group 1 or 2 is evaluated
            raise RuntimeError("connection lost")
        return real_load_group(conn, first, last, now=now)

    monkeypatch.setattr(history_import, "_load_group", load_group)
    with pytest.raises(RuntimeError, match="connection lost"):
        history_import.import_activities(engine, path, clock=SystemClock(), group_rows=4)
    assert staging_tables(engine) == []
    with engine.connect() as c:
        loaded = c.scalars(select(activity_ledger.c.peer_mentor_id).distinct()
                           .where(activity_ledger.c.peer_mentor_id.in_(mentors))).all()  # fmt: skip
    # Groups 1 and 2 were loaded and committed, and handed over (in order)
    # before the failure, so they were evaluated too; then it stopped.
    assert sorted(loaded) == mentors[:4]
    assert earned(engine, mentors) == mentors[:4]

    monkeypatch.setattr(history_import, "_load_group", real_load_group)
    report = history_import.import_activities(engine, path, clock=SystemClock(), group_rows=4)
    assert (report.imported, report.already_present, report.awarded) == (4, 8, 2)
    assert earned(engine, mentors) == mentors


def earned(engine: Engine, mentors: list[uuid.UUID]) -> list[uuid.UUID]:
    with engine.connect() as c:
        return sorted(c.scalars(select(earned_badges.c.peer_mentor_id)
                                .where(earned_badges.c.peer_mentor_id.in_(mentors))))  # fmt: skip
