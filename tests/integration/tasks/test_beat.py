"""Celery beat: the schedule, and the periodic tasks running in real worker processes."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from celery.schedules import crontab
from sqlalchemy import Engine, select, update

import celeryconfig
from schema.tables import mentor_activity_counts, tier_assignments, tier_evaluation_runs
from tests.helpers import saved_event, wait_for
from tests.integration.harness import BeatProcess, WorkerProcess, apply, organisation
from tests.tier_helpers import award_period, ingest, period_id, promotion_keys, tier
from worker.core.clock import SystemClock, local_today
from worker.core.settings import Settings, get_settings


def test_beat_schedule_comes_from_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TIER_REEVALUATION_INTERVAL_S", "120")
    monkeypatch.setenv("OUTBOX_RELAY_INTERVAL_S", "5")
    monkeypatch.setenv("RECONCILE_HOUR", "2")
    monkeypatch.setenv("RECONCILE_MINUTE", "45")
    schedule = celeryconfig.build_beat_schedule(Settings())
    assert {name: entry["task"] for name, entry in schedule.items()} == {
        "reevaluate-tiers": "badges.reevaluate_tiers",
        "relay-outbox": "badges.relay_outbox",
        "reconcile": "badges.reconcile",
    }
    assert schedule["reevaluate-tiers"]["schedule"] == 120
    assert schedule["relay-outbox"]["schedule"] == 5
    nightly = schedule["reconcile"]["schedule"]
    assert isinstance(nightly, crontab)
    assert (nightly.hour, nightly.minute) == ({2}, {45})
    assert all(e["options"]["queue"] == "maintenance" for e in schedule.values())


def test_defaults_and_local_time_zone(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("TIER_REEVALUATION_INTERVAL_S", "OUTBOX_RELAY_INTERVAL_S"):
        monkeypatch.delenv(name, raising=False)
    defaults = celeryconfig.build_beat_schedule(Settings())
    assert defaults["reevaluate-tiers"]["schedule"] == 900
    assert defaults["relay-outbox"]["schedule"] == 30
    # crontab hours are read in the app's time zone, the configured one.
    assert celeryconfig.timezone == get_settings().timezone == "Europe/Oslo"
    for name in ("badges.reevaluate_tiers", "badges.reconcile", "badges.relay_outbox"):
        assert celeryconfig.task_routes[name] == {"queue": "maintenance"}


def _active_org(engine: Engine) -> tuple[uuid.UUID, uuid.UUID]:
    """An organisation whose award period covers today (the worker uses the real clock)."""
    org, mentor = uuid.uuid4(), uuid.uuid4()
    today = local_today(SystemClock(), get_settings().tz)
    with engine.begin() as c:
        apply(
            c,
            {
                "organisations": [organisation(org)],
                "tiers": [tier(org, "bronze", 1, 1)],
                "award_periods": [
                    award_period(
                        org, start=today - timedelta(days=30), end=today + timedelta(days=30)
                    )
                ],
            },
        )
        ingest(c, [saved_event(org=org, mentor=mentor, day=today)], SystemClock().now())
    return org, mentor


def _assigned(engine: Engine, mentor: uuid.UUID) -> list[int]:
    with engine.connect() as c:
        return list(
            c.scalars(
                select(tier_assignments.c.tier).where(tier_assignments.c.peer_mentor_id == mentor)
            )
        )


def test_reevaluate_tiers_task_runs_in_a_real_worker(
    clean_db: Engine, worker: WorkerProcess
) -> None:
    from worker.app import app

    _, mentor = _active_org(clean_db)
    app.send_task("badges.reevaluate_tiers")
    assert wait_for(lambda: _assigned(clean_db, mentor), until=bool, what="tier assignment") == [1]
    with clean_db.connect() as c:
        assert len(promotion_keys(c, mentor)) == 1


def test_reconcile_task_runs_in_a_real_worker(clean_db: Engine, worker: WorkerProcess) -> None:
    from worker.app import app

    _, mentor = _active_org(clean_db)
    with clean_db.begin() as c:
        c.execute(
            update(mentor_activity_counts)
            .where(mentor_activity_counts.c.peer_mentor_id == mentor)
            .values(activity_count=40)
        )

    def stored() -> int | None:
        with clean_db.connect() as c:
            return c.scalar(
                select(mentor_activity_counts.c.activity_count).where(
                    mentor_activity_counts.c.peer_mentor_id == mentor
                )
            )

    app.send_task("badges.reconcile")
    assert wait_for(stored, until=lambda n: n == 1, what="reconcile to repair the count") == 1


@pytest.fixture
def two_beats(tmp_path: Path) -> Iterator[list[BeatProcess]]:
    env = {"TIER_REEVALUATION_INTERVAL_S": "1", "OUTBOX_RELAY_INTERVAL_S": "3600"}
    beats = [BeatProcess(tmp_path, f"beat-{i}", env) for i in range(2)]
    yield beats
    for beat in beats:
        beat.stop()


def test_two_beat_processes_neither_double_assign_nor_double_notify(
    clean_db: Engine, worker: WorkerProcess, two_beats: list[BeatProcess]
) -> None:
    org, mentor = _active_org(clean_db)
    assert wait_for(lambda: _assigned(clean_db, mentor), until=bool, what="tier assignment") == [1]

    seen: set[object] = set()

    def runs() -> int:
        with clean_db.connect() as c:
            seen.add(
                c.scalar(
                    select(tier_evaluation_runs.c.evaluated_at).where(
                        tier_evaluation_runs.c.award_period_id == period_id(org)
                    )
                )
            )
        return len(seen)

    # Several more runs from both beats (some overlapping, some skipped by the lock).
    wait_for(runs, until=lambda n: n >= 5, what="repeated re-evaluations")
    for beat in two_beats:
        beat.stop()
    logs = [b.log_path.read_text(errors="replace") for b in two_beats]
    assert all("Sending due task reevaluate-tiers" in log for log in logs), logs

    assert _assigned(clean_db, mentor) == [1]
    with clean_db.connect() as c:
        # One notification: its in-app row (the session worker has no push gateway).
        assert list(promotion_keys(c, mentor).values()) == [1]


def test_a_run_while_another_holds_the_job_lock_is_skipped(
    engine: Engine, capsys: pytest.CaptureFixture[str]
) -> None:
    from worker.cli import main
    from worker.db.locks import try_lock_job
    from worker.ingestion.reconcile import JOB_NAME as RECONCILE_JOB
    from worker.tasks.periodic import reconcile_task, reevaluate_tiers_task
    from worker.tiers.reevaluation import JOB_NAME as TIERS_JOB

    with engine.connect() as holder, holder.begin():
        assert try_lock_job(holder, TIERS_JOB) and try_lock_job(holder, RECONCILE_JOB)
        # The task bodies, called in this process while the "other run" holds the locks.
        assert reevaluate_tiers_task() == {"skipped": True}
        assert reconcile_task() == {"skipped": True}
        assert main(["tiers", "evaluate"]) == 1
        assert main(["reconcile"]) == 1
        err = capsys.readouterr().err
        assert "another tier re-evaluation is running" in err
        assert "another reconcile is running" in err


def test_an_invalid_periodic_message_is_rejected_without_running() -> None:
    from worker.tasks.periodic import reconcile_task, reevaluate_tiers_task

    assert reevaluate_tiers_task(organisation_id="not-a-uuid") == {"invalid": True}
    assert reevaluate_tiers_task("positional") == {"invalid": True}
    assert reconcile_task(unknown=True) == {"invalid": True}
