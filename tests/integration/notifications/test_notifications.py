"""Notification fan-out end to end: real PostgreSQL, Redis, worker processes and a push gateway.

The gateway is a local HTTP server started by the test; it scripts its answers
per mentor and counts requests (and successful deliveries) by Idempotency-Key.

These tests use a Redis database index of their own and a worker configured
for the gateway (tiny backoff, three attempts, short timeouts, relay grace
period 0), so the session's gateway-less worker never takes their messages.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from celery import Celery
from sqlalchemy import Engine, select

from schema.tables import earned_badges, notification_outbox, notifications
from tests.helpers import badge, saved_event, threshold, wait_for
from tests.integration.harness import ROOT, WorkerProcess, apply, organisation
from tests.integration.push_gateway import TOKEN, Gateway
from worker.core.clock import SystemClock
from worker.db.unit_of_work import unit_of_work
from worker.ingestion.ingest import IncomingEvent, ingest_events
from worker.notifications.outbox import BACKFILL_SKIP_REASON
from worker.notifications.push import NO_GATEWAY_REASON
from worker.notifications.types import Channel, OutboxRef

FINAL = {"sent", "dead", "skipped"}

# This process writes push rows, as the module's push worker does.
pytestmark = pytest.mark.usefixtures("push_enabled")


@pytest.fixture(scope="module")
def sender(broker_url: str) -> Iterator[Celery]:
    """A Celery client on this module's broker (the process's own app talks to the session's)."""
    client = Celery("notifications-test")
    client.config_from_object("celeryconfig")
    client.conf.broker_url = broker_url
    yield client
    client.close()


@pytest.fixture(scope="module")
def worker_env(gateway: Gateway, broker_url: str) -> dict[str, str]:
    return {
        "BROKER_URL": broker_url,
        "PUSH_GATEWAY_URL": gateway.url,
        "PUSH_GATEWAY_TOKEN": TOKEN,
        "PUSH_MAX_ATTEMPTS": "3",
        "PUSH_BACKOFF_BASE_S": "0.05",
        "MAX_RETRY_DELAY_S": "1",
        "PUSH_CONNECT_TIMEOUT_S": "1",
        "PUSH_READ_TIMEOUT_S": "1",
        "OUTBOX_GRACE_PERIOD_S": "0",
    }


@pytest.fixture(scope="module")
def push_worker(engine: Engine, worker_env: dict[str, str]) -> Iterator[WorkerProcess]:
    process = WorkerProcess(env=worker_env, name=f"push-{uuid.uuid4().hex[:8]}")
    yield process
    process.stop()


def configure(engine: Engine, *, language: str = "nb") -> uuid.UUID:
    org = uuid.uuid4()
    apply(
        engine,
        {
            "organisations": [organisation(org, language=language)],
            "badges": [badge(org, "first-step", threshold(1))],
        },
    )
    return org


def publish_activity(sender: Celery, org: uuid.UUID, mentor: uuid.UUID) -> None:
    """Publish one event the way producers do, on this module's broker."""
    sender.send_task(
        "badges.ingest_activity",
        kwargs={"event": saved_event(org=org, mentor=mentor)},
        queue="activity_events",
    )


def outbox(engine: Engine, mentor: uuid.UUID) -> dict[str, Any]:
    with engine.connect() as c:
        rows = c.execute(
            select(notification_outbox).where(notification_outbox.c.peer_mentor_id == mentor)
        )
        return {row.channel: row for row in rows}


def wait_final(engine: Engine, mentor: uuid.UUID, timeout: float = 60) -> dict[str, Any]:
    return wait_for(
        lambda: outbox(engine, mentor),
        until=lambda rows: len(rows) == 2 and all(r.state in FINAL for r in rows.values()),
        timeout=timeout,
        what=f"both notifications of {mentor} to reach a final state",
    )


def in_app_count(engine: Engine, mentor: uuid.UUID) -> int:
    with engine.connect() as c:
        return len(
            list(
                c.execute(
                    select(notifications.c.id).where(notifications.c.peer_mentor_id == mentor)
                )
            )
        )


def award_rows(engine: Engine, mentor: uuid.UUID) -> list[Any]:
    with engine.connect() as c:
        return list(
            c.execute(select(earned_badges).where(earned_badges.c.peer_mentor_id == mentor))
        )


def wait_award(engine: Engine, mentor: uuid.UUID) -> list[Any]:
    return wait_for(lambda: award_rows(engine, mentor), until=bool, what="the award")


def send_delivery(sender: Celery, refs: list[OutboxRef]) -> list[str]:
    """Send delivery tasks as ``dispatch_outbox`` does; returns the task ids."""
    names = {Channel.IN_APP: "badges.deliver_in_app", Channel.PUSH: "badges.deliver_push"}
    return [
        sender.send_task(
            names[r.channel], kwargs={"outbox_id": str(r.id)}, queue="notifications"
        ).id
        for r in refs
    ]


def wait_tasks_done(worker: WorkerProcess, task_ids: list[str]) -> None:
    """Wait until the worker logged every one of these tasks as finished."""
    wait_for(
        lambda: [t for t in task_ids if f"{t}] succeeded" not in worker.log()],
        until=lambda missing: not missing,
        what="the tasks to finish",
    )


def cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "worker.cli", *args],
        cwd=ROOT, env={**os.environ, **env}, capture_output=True, text=True, timeout=120,
    )  # fmt: skip


# --- acceptance ---------------------------------------------------------------------------------


def test_gateway_500_500_200_delivers_exactly_once(
    clean_db: Engine, push_worker: WorkerProcess, gateway: Gateway, sender: Celery
) -> None:
    org, mentor = configure(clean_db), uuid.uuid4()
    gateway.answer(mentor, "500", "500", "200")
    publish_activity(sender, org, mentor)
    award_before = wait_award(clean_db, mentor)

    rows = wait_final(clean_db, mentor)

    push = rows["push"]
    assert (push.state, push.attempts, push.last_error) == ("sent", 3, 'HTTP 500: {"status": 500}')
    assert push.delivered_at is not None
    requests = gateway.requests_for(push.id)
    assert len(requests) == 3
    assert gateway.delivered[str(push.id)] == 1
    assert {r["auth"] for r in requests} == {f"Bearer {TOKEN}"}
    body = requests[-1]["body"]
    assert body["kind"] == "badge_earned" and body["title"] == "Nytt merke: First-Step"
    assert body["data"]["code"] == "first-step"
    assert rows["in_app"].state == "sent" and in_app_count(clean_db, mentor) == 1
    assert award_rows(clean_db, mentor) == award_before


@pytest.mark.parametrize("failure", ["timeout", "refused"])
def test_unreachable_gateway_goes_dead_then_retry_dead_delivers_once(
    clean_db: Engine,
    push_worker: WorkerProcess,
    gateway: Gateway,
    sender: Celery,
    worker_env: dict[str, str],
    failure: str,
) -> None:
    org, mentor = configure(clean_db), uuid.uuid4()
    if failure == "timeout":
        gateway.answer(mentor, "hang", "hang", "hang")
    else:
        gateway.stop()
    try:
        publish_activity(sender, org, mentor)
        award_before = wait_award(clean_db, mentor)
        rows = wait_final(clean_db, mentor)
    finally:
        if failure == "refused":
            gateway.start()  # the gateway is back

    push = rows["push"]
    assert (push.state, push.attempts) == ("dead", 3)
    expected_error = (
        "timeout: ReadTimeout" if failure == "timeout" else "connection error: ConnectError"
    )
    assert push.last_error.startswith(expected_error)
    assert gateway.delivered[str(push.id)] == 0
    assert rows["in_app"].state == "sent" and in_app_count(clean_db, mentor) == 1
    assert award_rows(clean_db, mentor) == award_before

    status = cli(worker_env, "notifications", "status", "--json")
    assert status.returncode == 0, status.stderr
    assert json.loads(status.stdout)["push"]["dead"] == 1

    retried = cli(worker_env, "notifications", "retry-dead")
    assert retried.returncode == 0, retried.stderr
    assert "re-queued 1 dead notification(s)" in retried.stdout

    push = wait_for(
        lambda: outbox(clean_db, mentor)["push"],
        until=lambda row: row.state in FINAL and row.attempts > 0,
        what="the re-queued push to be delivered",
    )
    assert (push.state, push.attempts) == ("sent", 1)
    assert gateway.delivered[str(push.id)] == 1
    assert award_rows(clean_db, mentor) == award_before
    assert in_app_count(clean_db, mentor) == 1


def test_gateway_400_is_dead_at_once_with_the_error(
    clean_db: Engine, push_worker: WorkerProcess, gateway: Gateway, sender: Celery
) -> None:
    org, mentor = configure(clean_db), uuid.uuid4()
    gateway.answer(mentor, "400", "200")
    publish_activity(sender, org, mentor)

    rows = wait_final(clean_db, mentor)

    push = rows["push"]
    assert (push.state, push.attempts) == ("dead", 1)
    assert push.last_error == 'HTTP 400: {"status": 400}'
    assert len(gateway.requests_for(push.id)) == 1  # no retry
    assert rows["in_app"].state == "sent"
    assert len(award_rows(clean_db, mentor)) == 1


CRASH_AFTER_COMMIT = """
import json, os, signal, sys
import worker.app  # installs the sender, as in a worker process
from worker.core.clock import SystemClock
from worker.db.unit_of_work import unit_of_work
from worker.db.unit_of_work import unit_of_work
from worker.ingestion.ingest import IncomingEvent, ingest_events
from worker.notifications import dispatch

def crash(refs, **_):  # the after-commit dispatch: die right before sending
    assert len(refs) == 2, refs
    print("committed", flush=True)
    os.kill(os.getpid(), signal.SIGKILL)

dispatch.dispatch_outbox = crash
with unit_of_work() as conn:
    ingest_events(conn, [IncomingEvent(json.loads(sys.argv[1]))], clock=SystemClock())
"""


def test_crash_between_commit_and_send_is_recovered_by_the_relay(
    clean_db: Engine,
    push_worker: WorkerProcess,
    gateway: Gateway,
    sender: Celery,
    worker_env: dict[str, str],
) -> None:
    org, mentor = configure(clean_db), uuid.uuid4()
    event = saved_event(org=org, mentor=mentor)
    child = subprocess.run(
        [sys.executable, "-c", CRASH_AFTER_COMMIT, json.dumps(event)],
        cwd=ROOT, env={**os.environ, **worker_env}, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert child.returncode == -signal.SIGKILL, child.stderr
    assert child.stdout.strip() == "committed"
    stranded = outbox(clean_db, mentor)
    assert {r.state for r in stranded.values()} == {"pending"}
    assert all(r.dispatched_at is None for r in stranded.values())
    assert len(award_rows(clean_db, mentor)) == 1

    relay = sender.send_task("badges.relay_outbox", queue="maintenance")

    rows = wait_final(clean_db, mentor)
    wait_tasks_done(push_worker, [relay.id])
    assert rows["in_app"].state == "sent" and rows["push"].state == "sent"
    assert all(r.dispatched_at is not None for r in rows.values())
    assert in_app_count(clean_db, mentor) == 1
    assert len(gateway.requests_for(rows["push"].id)) == 1
    assert gateway.delivered[str(rows["push"].id)] == 1


def test_same_outbox_id_twice_concurrently_delivers_once(
    clean_db: Engine, push_worker: WorkerProcess, gateway: Gateway, sender: Celery
) -> None:
    org, mentor = configure(clean_db), uuid.uuid4()
    with clean_db.begin() as c:  # written, not dispatched: the test sends the deliveries
        refs = ingest_events(
            c, [IncomingEvent(saved_event(org=org, mentor=mentor))], clock=SystemClock()
        ).outbox
    gateway.answer(mentor, "slow", "slow")  # keeps the first send in flight a while
    # Each delivery task twice; the worker's two processes take them side by side.
    task_ids = send_delivery(sender, sorted(refs * 2, key=lambda r: r.channel))

    wait_tasks_done(push_worker, task_ids)  # the duplicates too, before counting
    rows = outbox(clean_db, mentor)
    assert rows["in_app"].state == "sent" and rows["push"].state == "sent"
    assert in_app_count(clean_db, mentor) == 1
    assert len(gateway.requests_for(rows["push"].id)) == 1
    assert rows["push"].attempts == 1 and rows["in_app"].attempts == 1


def test_bulk_import_awards_create_in_app_rows_and_no_pushes(
    clean_db: Engine, push_worker: WorkerProcess, gateway: Gateway, sender: Celery
) -> None:
    org = configure(clean_db)
    mentors = [uuid.uuid4() for _ in range(5)]
    with clean_db.begin() as c:  # written, not dispatched: the test sends the deliveries
        result = ingest_events(
            c,
            [IncomingEvent(saved_event(org=org, mentor=m)) for m in mentors],
            clock=SystemClock(),
            backfill=True,
        )
    assert len(result.awarded) == 5
    assert {r.channel for r in result.outbox} == {Channel.IN_APP}  # push rows are not dispatched
    task_ids = send_delivery(sender, result.outbox)
    # The relay leaves skipped push rows alone too.
    task_ids.append(sender.send_task("badges.relay_outbox", queue="maintenance").id)

    for mentor in mentors:
        rows = wait_final(clean_db, mentor)
        assert rows["in_app"].state == "sent"
        assert (rows["push"].state, rows["push"].last_error) == ("skipped", BACKFILL_SKIP_REASON)
        assert in_app_count(clean_db, mentor) == 1
    wait_for(
        lambda: push_worker.log().count("badges.relay_outbox"),
        until=lambda n: n >= 2,  # received and succeeded
        what="the relay run to finish",
    )
    assert all(gateway.requests_for_mentor(m) == [] for m in mentors)


def test_without_a_gateway_no_push_row_is_written_and_in_app_still_works(
    clean_db: Engine, worker: WorkerProcess
) -> None:
    """The session worker has no PUSH_GATEWAY_URL: the push channel is disabled."""
    from worker.tasks.publishing import publish

    org = configure(clean_db)
    mentors = [uuid.uuid4() for _ in range(4)]
    publish([saved_event(org=org, mentor=m) for m in mentors])

    def delivered() -> dict[uuid.UUID, set[tuple[str, str]]]:
        return {m: {(r.channel, r.state) for r in outbox(clean_db, m).values()} for m in mentors}

    # One in-app row each, delivered; no push row at all.
    wait_for(
        delivered,
        until=lambda rows: all(channels == {("in_app", "sent")} for channels in rows.values()),
        what="the in-app notifications delivered",
    )
    assert all(in_app_count(clean_db, m) == 1 for m in mentors)
    # Said once per worker process that wrote notifications, not once per notification.
    assert 1 <= worker.log().count("push channel disabled (PUSH_GATEWAY_URL unset)") <= 2


def test_push_rows_reaching_a_worker_without_a_gateway_are_skipped(
    clean_db: Engine, worker: WorkerProcess
) -> None:
    """Rows written by a process with a gateway, delivered by one without (the session worker)."""
    org = configure(clean_db)
    mentors = [uuid.uuid4() for _ in range(3)]
    with unit_of_work(clean_db) as c:  # dispatched after commit to the session's broker
        ingest_events(
            c,
            [IncomingEvent(saved_event(org=org, mentor=m)) for m in mentors],
            clock=SystemClock(),
        )
    for mentor in mentors:
        rows = wait_final(clean_db, mentor)
        assert rows["in_app"].state == "sent"
        assert (rows["push"].state, rows["push"].last_error) == ("skipped", NO_GATEWAY_REASON)
        assert rows["push"].attempts == 0
    assert 1 <= worker.log().count("push channel disabled: ") <= 2
