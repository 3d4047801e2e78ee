"""The other ways in: the API's configuration routes and tier configuration changes."""

from __future__ import annotations

import uuid
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from sqlalchemy import Engine, func, select

from schema.tables import earned_badges, tier_assignments
from tests.helpers import badge, saved_event, threshold, wait_for
from tests.integration.api.harness import Org, running_api
from tests.integration.harness import WorkerProcess, apply, organisation
from worker.cli import main
from worker.core.clock import SystemClock
from worker.db.unit_of_work import unit_of_work
from worker.ingestion.ingest import IncomingEvent, ingest_events

DEFS = "/api/v1/badge-definitions"


def _history(engine: Engine, org: uuid.UUID, sessions: dict[uuid.UUID, int], start: date) -> None:
    events = [
        IncomingEvent(saved_event(org=org, mentor=m, day=start + timedelta(weeks=i)))
        for m, n in sessions.items()
        for i in range(n)
    ]
    with unit_of_work(engine) as conn:
        ingest_events(conn, events, clock=SystemClock())


def _earned(engine: Engine, org: uuid.UUID) -> dict[uuid.UUID, str]:
    with engine.connect() as c:
        return {
            m: source
            for m, source in c.execute(
                select(earned_badges.c.peer_mentor_id, earned_badges.c.award_source).where(
                    earned_badges.c.organisation_id == org
                )
            ).all()
        }


def test_saving_definitions_enqueues_the_evaluation_and_validate_previews_it(
    clean_db: Engine, worker: WorkerProcess
) -> None:
    engine = clean_db
    org = uuid.uuid4()
    apply(engine, {"organisations": [organisation(org)]})
    mentors = {uuid.uuid4(): n for n in (1, 3, 4, 6)}
    _history(engine, org, mentors, date(2026, 2, 2))
    items = [badge(org, "three", threshold(3, "peer_session"))]
    with running_api(engine) as api:
        admin = api.admin(Org(id=org))
        dry = api.client.post(f"{DEFS}/validate", json={"items": items}, headers=admin)
        assert dry.status_code == 200
        (preview,) = dry.json()["preview"]
        assert (preview["code"], preview["newly_earned"], preview["lost"]) == ("three", 3, 0)
        assert dry.json()["evaluation_enqueued"] is False
        assert _earned(engine, org) == {}

        saved = api.client.put(DEFS, json={"items": items}, headers=admin)
        assert saved.status_code == 200
        assert saved.json()["evaluation_enqueued"] is True
        assert saved.json()["preview"] == []
    expected = {m: "backfill" for m, n in mentors.items() if n >= 3}
    wait_for(
        lambda: _earned(engine, org),
        until=lambda held: held == expected,
        timeout=120,
        what="badges.evaluate_definitions on the maintenance queue",
    )


def _tier_config(org: uuid.UUID, *, min_assignments: int, today: date) -> dict[str, Any]:
    o = str(org)
    return {
        "organisations": [organisation(org)],
        "tiers": [{"organisation_id": o, "level": "bronze", "min_assignments": min_assignments,
                   "min_streak": 2}],
        "award_periods": [{"organisation_id": o, "name": "this year",
                           "start_date": (today - timedelta(days=200)).isoformat(),
                           "end_date": (today + timedelta(days=30)).isoformat()}],
        "badges": [badge(org, "bronze-badge", {"type": "tier", "version": 1,
                                               "min_tier": "bronze"})],
    }  # fmt: skip


def test_a_tier_change_reevaluates_the_organisation_right_away(
    clean_db: Engine, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    engine = clean_db
    org = uuid.uuid4()
    today = SystemClock().now().date()
    path = tmp_path / "tiers.yaml"
    path.write_text(yaml.safe_dump(_tier_config(org, min_assignments=100, today=today)))
    assert main(["definitions", "apply", str(path)]) == 0
    mentors = {uuid.uuid4(): n for n in (1, 4, 6)}
    _history(engine, org, mentors, today - timedelta(weeks=10))
    capsys.readouterr()

    path.write_text(yaml.safe_dump(_tier_config(org, min_assignments=4, today=today)))
    assert main(["definitions", "apply", str(path)]) == 0
    out = capsys.readouterr().out
    assert f"tiers of organisation {org} re-evaluated: 2 promotion(s)" in out
    with engine.connect() as c:
        promoted = set(
            c.scalars(
                select(tier_assignments.c.peer_mentor_id).where(
                    tier_assignments.c.organisation_id == org
                )
            )
        )
        assert c.execute(
            select(func.count()).where(tier_assignments.c.organisation_id == org)
        ).scalar_one() == len(promoted)
    assert promoted == {m for m, n in mentors.items() if n >= 4}
    # The tier badge follows the promotions (the usual tier follow-up).
    assert set(_earned(engine, org)) == promoted
