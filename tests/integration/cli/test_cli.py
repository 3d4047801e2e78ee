"""``badges publish``, ``earned``, ``award`` and ``schema events`` on PostgreSQL + Redis."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest
from sqlalchemy import Engine, func, select

from schema.tables import badge_audit, earned_badges, processed_events
from tests.helpers import badge, saved_event, threshold, wait_for
from tests.integration.harness import WorkerProcess, apply, organisation
from worker.cli import main


def test_publish_reports_bad_lines_and_publishes_the_good_ones(
    engine: Engine, worker: WorkerProcess, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    org, mentor = uuid.uuid4(), uuid.uuid4()
    apply(
        engine, {"organisations": [organisation(org)], "badges": [badge(org, "two", threshold(2))]}
    )
    good = [saved_event(org=org, mentor=mentor) for _ in range(2)]
    lines = [
        json.dumps(good[0]),
        "{broken",
        json.dumps({**good[1], "schema_version": 5}),
        "",
        json.dumps(good[1]),
    ]
    path = tmp_path / "events.jsonl"
    path.write_text("\n".join(lines) + "\n")
    assert main(["publish", str(path)]) == 1  # partly invalid: the good ones went out
    captured = capsys.readouterr()
    assert "line 2: not JSON" in captured.err
    assert "line 3: schema_version: unsupported schema version 5" in captured.err
    assert "published 2 event(s); 2 invalid line(s) skipped" in captured.out

    def earned() -> list[dict[str, str]]:
        main(["earned", "--mentor", str(mentor), "--json"])
        listed: list[dict[str, str]] = json.loads(capsys.readouterr().out)
        return listed

    rows = wait_for(earned, until=bool, what="the badge to be earned")
    assert len(rows) == 1
    assert set(rows[0]) == {
        "id",
        "badge_definition_id",
        "code",
        "peer_mentor_id",
        "organisation_id",
        "earned_at",
    }
    assert (rows[0]["code"], rows[0]["peer_mentor_id"]) == ("two", str(mentor))
    with engine.connect() as c:
        ids = [uuid.UUID(e["event_id"]) for e in good]
        assert c.execute(select(func.count()).select_from(processed_events).where(
            processed_events.c.event_id.in_(ids))).scalar_one() == 2  # fmt: skip


def test_publish_with_no_valid_line_exits_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_text('{"event_type": "activity.saved"}\n')
    assert main(["publish", str(path)]) == 2
    assert "no valid events, nothing published" in capsys.readouterr().err


def test_manual_award_is_idempotent_and_audited(
    engine: Engine, capsys: pytest.CaptureFixture[str]
) -> None:
    org, mentor = uuid.uuid4(), uuid.uuid4()
    apply(
        engine,
        {"organisations": [organisation(org)],
         "badges": [badge(org, "hero", {"type": "raw", "version": 1, "raw": {"note": "board decision"}})]},
    )  # fmt: skip
    args = ["award", "--org", str(org), "--badge", "hero", "--mentor", str(mentor)]
    assert main(args) == 0
    assert capsys.readouterr().out.startswith("awarded: hero")
    assert main(args) == 0
    assert capsys.readouterr().out.startswith("already earned: hero")
    with engine.connect() as c:
        assert c.execute(select(func.count()).select_from(earned_badges).where(
            earned_badges.c.peer_mentor_id == mentor)).scalar_one() == 1  # fmt: skip
        audit = c.execute(select(badge_audit.c.action, badge_audit.c.actor).where(
            badge_audit.c.peer_mentor_id == mentor)).all()  # fmt: skip
    assert [tuple(a) for a in audit] == [("manual_award", "cli")]


def test_award_of_an_unknown_badge_or_bad_id_exits_2(
    engine: Engine, capsys: pytest.CaptureFixture[str]
) -> None:
    assert (
        main(
            ["award", "--org", str(uuid.uuid4()), "--badge", "nope", "--mentor", str(uuid.uuid4())]
        )
        == 2
    )
    assert "no badge 'nope'" in capsys.readouterr().err
    assert main(["earned", "--mentor", "not-a-uuid"]) == 2
    assert "--mentor: 'not-a-uuid' is not a UUID" in capsys.readouterr().err


def test_schema_events_prints_the_json_schema(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["schema", "events"]) == 0
    schema = json.loads(capsys.readouterr().out)
    assert schema["title"] == "ActivityEvent"
    assert "badges.ingest_activity" in schema["description"]
