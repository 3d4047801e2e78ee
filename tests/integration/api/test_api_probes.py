"""``/livez`` never touches a dependency; ``/readyz`` does; database-derived gauges."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from fastapi.testclient import TestClient
from sqlalchemy import Engine, create_engine

from api.app import create_app
from schema.tables import quarantined_events
from tests.integration.api.harness import SECRET
from worker.core.clock import FixedClock
from worker.db.unit_of_work import unit_of_work
from worker.observability.job_runs import record_success


def test_livez_answers_while_the_database_is_down_and_readyz_does_not() -> None:
    unreachable = create_engine("postgresql+psycopg://postgres@127.0.0.1:1/none")
    with TestClient(create_app(jwt_secret=SECRET, engine=unreachable)) as client:
        assert client.get("/livez").status_code == 200
        ready = client.get("/readyz")
    assert ready.status_code == 503
    assert ready.json()["checks"]["database"]["status"] == "error"


def test_readyz_is_200_when_database_and_broker_answer(engine: Engine) -> None:
    with TestClient(create_app(jwt_secret=SECRET, engine=engine)) as client:
        response = client.get("/readyz")
    assert response.status_code == 200
    assert response.json()["status"] == "ok"


def test_gauges_for_quarantine_and_periodic_jobs(sqlite_engine: Engine) -> None:
    now = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
    with unit_of_work(sqlite_engine) as conn:
        conn.execute(
            quarantined_events.insert(),
            [{"raw_payload": "{}", "reason": "test", "received_at": now} for _ in range(3)],
        )
        record_success(conn, "relay_outbox", finished_at=now - timedelta(minutes=1), duration_s=0.2)
    app = create_app(jwt_secret=SECRET, engine=sqlite_engine, clock=FixedClock(now))
    with TestClient(app) as client:
        text = client.get("/metrics").text
    lines = dict(line.rsplit(" ", 1) for line in text.splitlines() if line and line[0] != "#")
    assert float(lines["badges_quarantined_events"]) == 3
    assert float(lines["badges_dead_letters"]) == 0
    assert float(lines["badges_outbox_backlog"]) == 0
    assert float(lines["badges_outbox_oldest_pending_age_seconds"]) == 0
    relay = lines['badges_job_last_success_timestamp_seconds{job="relay_outbox"}']
    assert float(relay) == (now - timedelta(minutes=1)).timestamp()
    assert float(lines['badges_job_last_success_timestamp_seconds{job="reconcile"}']) == 0
