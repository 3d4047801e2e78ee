"""The pipeline through a transaction-mode PgBouncer, as behind Supabase's pooler on port 6543.

A real Celery worker whose ``DATABASE_URL`` points at a PgBouncer started
here (``pool_mode = transaction``, three server connections), with
``DATABASE_POOLER=transaction``: events are ingested, badges awarded, in-app
notifications written and pushes sent through a local gateway; the REST API
awards through the same pooler.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path

import jwt
import psycopg
import pytest
from celery import Celery
from fastapi.testclient import TestClient
from sqlalchemy import Engine, func, select

from api.app import create_app
from schema.migrate import current_revision, upgrade
from schema.tables import earned_badges, notification_outbox, notifications
from tests import services
from tests.helpers import badge, saved_event, threshold, wait_for
from tests.integration.api.harness import SECRET, bearer
from tests.integration.harness import ROOT, WorkerProcess, apply, organisation, processed_count
from tests.integration.push_gateway import TOKEN, Gateway
from tests.pgbouncer import PgBouncer
from worker.db.engine import make_engine

MENTORS = 4
EVENTS_PER_MENTOR = 6


@pytest.fixture(scope="module")
def pgbouncer(engine: Engine) -> Iterator[PgBouncer]:
    pooler = PgBouncer(engine.url.render_as_string(hide_password=False))
    yield pooler
    pooler.stop()


@pytest.fixture(scope="module")
def pooled_url(engine: Engine, pgbouncer: PgBouncer) -> str:
    return pgbouncer.url_for(engine.url.render_as_string(hide_password=False))


@pytest.fixture(scope="module")
def pooled_worker(
    engine: Engine, pooled_url: str, gateway: Gateway, broker_url: str
) -> Iterator[WorkerProcess]:
    env = {
        "DATABASE_URL": pooled_url,
        "DATABASE_POOLER": "transaction",
        "BROKER_URL": broker_url,
        "PUSH_GATEWAY_URL": gateway.url,
        "PUSH_GATEWAY_TOKEN": TOKEN,
        "PUSH_BACKOFF_BASE_S": "0.05",
        "MAX_RETRY_DELAY_S": "1",
        "OUTBOX_GRACE_PERIOD_S": "0",
    }
    process = WorkerProcess(env=env, concurrency=2, name=f"pooled-{uuid.uuid4().hex[:8]}")
    yield process
    process.stop()


def _backend_pid(connection: psycopg.Connection[tuple[int]]) -> int:
    with connection.transaction():
        row = connection.execute("SELECT pg_backend_pid()").fetchone()
    assert row is not None
    return int(row[0])


def test_the_pooler_hands_transactions_to_different_server_connections(
    pooled_url: str,
) -> None:
    """The premise: consecutive transactions of one client may run on different servers."""
    conninfo = pooled_url.replace("postgresql+psycopg://", "postgresql://")
    with (
        psycopg.connect(conninfo, autocommit=True, prepare_threshold=None) as client,
        psycopg.connect(conninfo, autocommit=True, prepare_threshold=None) as other,
    ):
        first = _backend_pid(client)
        with other.transaction():  # holds the server connection `client` just used
            other.execute("SELECT 1")
            second = _backend_pid(client)
    assert first != second


def test_the_pipeline_runs_through_a_transaction_pooler(
    clean_db: Engine,
    pooled_worker: WorkerProcess,
    pooled_url: str,
    pgbouncer: PgBouncer,
    gateway: Gateway,
    broker_url: str,
) -> None:
    org = uuid.uuid4()
    apply(
        clean_db,
        {
            "organisations": [organisation(org)],
            "badges": [
                badge(org, "first-step", threshold(1)),
                badge(org, "six", threshold(EVENTS_PER_MENTOR)),
            ],
        },
    )
    mentors = [uuid.uuid4() for _ in range(MENTORS)]
    events = [
        saved_event(org=org, mentor=mentor, day=date(2026, 3, 2) + timedelta(days=i))
        for mentor in mentors
        for i in range(EVENTS_PER_MENTOR)
    ]
    sender = Celery("pooler-test")
    sender.config_from_object("celeryconfig")
    sender.conf.broker_url = broker_url
    try:
        for event in events:  # one message at a time: many small transactions
            sender.send_task(
                "badges.ingest_activity", kwargs={"event": event}, queue="activity_events"
            )
    finally:
        sender.close()

    def processed() -> int:
        return processed_count(clean_db, [e["event_id"] for e in events])

    wait_for(processed, until=lambda n: n == len(events), timeout=120, what="all events")

    def outbox_states() -> dict[tuple[str, str], int]:
        with clean_db.connect() as c:
            rows = c.execute(
                select(notification_outbox.c.channel, notification_outbox.c.state, func.count())
                .where(notification_outbox.c.peer_mentor_id.in_(mentors))
                .group_by(notification_outbox.c.channel, notification_outbox.c.state)
            )
            return {(channel, state): int(n) for channel, state, n in rows}

    awards = 2 * MENTORS
    states = wait_for(
        outbox_states,
        until=lambda s: s == {("in_app", "sent"): awards, ("push", "sent"): awards},
        timeout=120,
        what="every notification delivered",
    )
    assert sum(states.values()) == 2 * awards
    with clean_db.connect() as c:
        earned = c.execute(
            select(earned_badges.c.peer_mentor_id, func.count())
            .where(earned_badges.c.peer_mentor_id.in_(mentors))
            .group_by(earned_badges.c.peer_mentor_id)
        ).all()
        in_app = c.execute(
            select(func.count()).where(notifications.c.peer_mentor_id.in_(mentors))
        ).scalar_one()
        push_ids = c.execute(
            select(notification_outbox.c.id).where(
                notification_outbox.c.peer_mentor_id.in_(mentors),
                notification_outbox.c.channel == "push",
            )
        ).scalars()
        leases = c.execute(
            select(func.count()).where(
                notification_outbox.c.peer_mentor_id.in_(mentors),
                notification_outbox.c.claimed_by.is_not(None),
            )
        ).scalar_one()
    assert sorted(n for _, n in earned) == [2] * MENTORS
    assert in_app == awards
    assert all(gateway.delivered[str(push_id)] == 1 for push_id in push_ids)
    assert leases == 0  # every push lease was released
    log = pooled_worker.log()
    assert "prepared statement" not in log
    assert " ERROR" not in log and "Traceback" not in log
    assert "login attempt: db=" in pgbouncer.log()  # the worker really connected through it


def test_the_api_awards_through_a_transaction_pooler(clean_db: Engine, pooled_url: str) -> None:
    org, mentor = uuid.uuid4(), uuid.uuid4()
    apply(
        clean_db, {"organisations": [organisation(org)], "badges": [badge(org, "a", threshold(9))]}
    )
    pooled = make_engine(pooled_url, transaction_pooler=True)
    now = int(time.time())
    service_key = jwt.encode(
        {"iss": "supabase", "ref": "x", "role": "service_role", "iat": now, "exp": now + 600},
        SECRET,
        algorithm="HS256",
    )
    try:
        with TestClient(create_app(jwt_secret=SECRET, engine=pooled)) as client:
            definitions = client.get(
                "/api/v1/badge-definitions",
                params={"organisation_id": str(org)},
                headers=bearer(service_key),
            )
            definition = definitions.json()["items"][0]["id"]
            body = {"badge_definition_id": definition, "peer_mentor_id": str(mentor)}
            statuses = [
                client.post(
                    "/api/v1/earned-badges", json=body, headers=bearer(service_key)
                ).status_code
                for _ in range(8)  # the same statements again and again: never prepared
            ]
    finally:
        pooled.dispose()
    assert statuses == [201] + [200] * 7


def test_migrations_run_through_a_transaction_pooler(pgbouncer: PgBouncer) -> None:
    """``badges db upgrade`` is one transaction: a release step may use the pooler too."""
    url = services.create_database()
    pooled = make_engine(pgbouncer.url_for(url), transaction_pooler=True)
    try:
        upgrade(pooled)
        head = current_revision(pooled)
        upgrade(pooled)
        assert head is not None and current_revision(pooled) == head
    finally:
        pooled.dispose()
        services.drop_database(url)


def test_the_history_import_refuses_a_transaction_pooler(pooled_url: str, tmp_path: Path) -> None:
    history = tmp_path / "history.jsonl"
    history.write_text("")
    done = subprocess.run(
        [sys.executable, "-m", "worker.cli", "import", "activities", str(history)],
        cwd=ROOT,
        env={**os.environ, "DATABASE_URL": pooled_url, "DATABASE_POOLER": "transaction"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2
    assert "transaction-mode pooler" in done.stderr
