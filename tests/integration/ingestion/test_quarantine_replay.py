"""``badges quarantine list`` and ``replay``: fix the cause, replay, nothing doubles."""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest
from sqlalchemy import Engine, func, select, text, update

from schema.tables import mentor_activity_counts, metadata, processed_events, quarantined_events
from tests.helpers import badge, saved_event, threshold
from tests.integration.harness import apply, organisation
from worker.cli import main
from worker.core.clock import SystemClock
from worker.db.unit_of_work import unit_of_work
from worker.ingestion.ingest import IncomingEvent, ingest_events


def _truncate(engine: Engine) -> None:
    with engine.begin() as c:
        c.execute(text(f"TRUNCATE {', '.join(t.name for t in metadata.sorted_tables)}"))


def _cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    code = main(list(argv))
    return code, capsys.readouterr().out


def _listed(capsys: pytest.CaptureFixture[str]) -> dict[str, dict[str, Any]]:
    code, out = _cli(capsys, "quarantine", "list", "--json")
    assert code == 0
    return {
        row["payload"]["event_id"]: row
        for row in json.loads(out)
        if isinstance(row["payload"], dict)
    }


def test_replay_after_the_organisation_was_configured(
    clean_db: Engine, capsys: pytest.CaptureFixture[str]
) -> None:
    _truncate(clean_db)  # earlier tests may have committed rows (``--all``/``list`` see all)
    org, mentor = uuid.uuid4(), uuid.uuid4()
    events = [saved_event(org=org, mentor=mentor) for _ in range(2)]
    with unit_of_work() as conn:
        result = ingest_events(
            conn, [IncomingEvent(e, f"task-{i}") for i, e in enumerate(events)], clock=SystemClock()
        )
    assert result.quarantined == 2

    rows = _listed(capsys)
    first = rows[events[0]["event_id"]]
    assert {"id", "reason", "payload", "quarantined_at", "replayed_at"} <= set(first)
    assert "unknown organisation" in first["reason"]
    assert first["replayed_at"] is None
    assert first["payload"] == events[0]

    # Still unknown: both stay quarantined, with the reason of this attempt.
    with clean_db.begin() as c:
        c.execute(update(quarantined_events).values(reason="an older reason"))
    code, out = _cli(capsys, "quarantine", "replay", "--all")
    assert code == 1
    assert "still quarantined" in out
    assert all("unknown organisation" in r["reason"] for r in _listed(capsys).values())

    apply(
        clean_db,
        {"organisations": [organisation(org)], "badges": [badge(org, "first", threshold(1))]},
    )
    code, out = _cli(capsys, "quarantine", "replay", "--id", str(first["id"]))
    assert code == 0, out
    assert "replayed 1 event(s): applied 1" in out
    assert "badges awarded 1" in out
    code, out = _cli(capsys, "quarantine", "replay", "--all")
    assert code == 0 and "replayed 1 event(s): applied 1" in out

    # Idempotent: nothing is left to replay, and an explicit id is skipped.
    code, out = _cli(capsys, "quarantine", "replay", "--all")
    assert code == 0 and "replayed 0 event(s)" in out
    code, out = _cli(capsys, "quarantine", "replay", "--id", str(first["id"]))
    assert code == 0 and "skipped: already replayed" in out

    rows = _listed(capsys)
    assert all(r["replayed_at"] is not None for r in rows.values())
    with clean_db.connect() as c:
        processed = c.execute(select(func.count()).select_from(processed_events)).scalar_one()
        lifetime = c.execute(
            select(func.sum(mentor_activity_counts.c.activity_count)).where(
                mentor_activity_counts.c.peer_mentor_id == mentor
            )
        ).scalar_one()
    assert (processed, lifetime) == (2, 2)
    code, out = _cli(capsys, "quarantine", "list", "--pending")
    assert code == 0 and "no quarantined events" in out


def test_replay_of_an_unknown_id_is_invalid_input(
    clean_db: Engine, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["quarantine", "replay", "--id", "987654321"]) == 2
    assert "no quarantined event with id 987654321" in capsys.readouterr().err
