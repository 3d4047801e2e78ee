"""Fault tests of the reliable Redis transport: real workers killed, servers restarted.

The visibility timeout stays at its production default (an hour) in every
test: whatever comes back, comes back through consumer heartbeats.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pytest
import redis
from sqlalchemy import Engine, func, select, text

from schema.tables import earned_badges, mentor_activity_counts, notifications
from tests.helpers import BASE_TIME, badge, saved_event, threshold, wait_for
from tests.integration.harness import ROOT, WorkerProcess, apply, organisation, processed_count
from tests.integration.redis_servers import RedisServer, Sentinel
from worker.app import app
from worker.core.clock import SystemClock
from worker.db.unit_of_work import unit_of_work
from worker.ingestion.reconcile import reconcile
from worker.model.events import TASK_NAME
from worker.notifications.relay import claim_undispatched

DRAIN_DEADLINE_S = 300  # generous, and far below the one-hour visibility timeout


def publish_to(url: str, queue: str, events: list[dict[str, Any]]) -> None:
    """Publish like any producer (``send_task``: an LPUSH onto the queue list)."""
    with app.connection_for_write(url) as connection:
        producer = app.amqp.Producer(connection)
        for e in events:
            app.send_task(TASK_NAME, kwargs={"event": e}, queue=queue, producer=producer)


def counts(engine: Engine, mentors: list[uuid.UUID]) -> dict[uuid.UUID, int]:
    t = mentor_activity_counts
    with engine.connect() as c:
        rows = c.execute(
            select(t.c.peer_mentor_id, func.sum(t.c.activity_count))
            .where(t.c.peer_mentor_id.in_(mentors))
            .group_by(t.c.peer_mentor_id)
        ).all()
    return {m: int(n) for m, n in rows}


def awards_and_notifications(engine: Engine, mentors: list[uuid.UUID]) -> tuple[int, int]:
    with engine.connect() as c:
        awards = c.execute(
            select(func.count())
            .select_from(earned_badges)
            .where(earned_badges.c.peer_mentor_id.in_(mentors))
        ).scalar_one()
        sent = c.execute(select(func.count()).select_from(notifications)
                         .where(notifications.c.peer_mentor_id.in_(mentors))).scalar_one()  # fmt: skip
    return int(awards), int(sent)


def relay_then_count(engine: Engine, mentors: list[uuid.UUID]) -> tuple[int, int]:
    with unit_of_work(engine) as c:  # the claimed rows are sent after the commit
        claim_undispatched(c, now=SystemClock().now(), grace_period_s=5.0, retry_overdue_s=5.0)
    return awards_and_notifications(engine, mentors)


def held_for(client: redis.Redis, queue: str) -> int:
    """Messages of ``queue`` still on the list or in the unacked hash."""
    unacked = sum(1 for v in client.hvals("unacked") if json.loads(v)[2] == queue)
    return int(client.llen(queue)) + unacked


def assert_stats_equal_a_recomputation(engine: Engine) -> None:
    with engine.connect() as c:
        assert reconcile(c, clock=SystemClock(), repair=False).total == 0


class Stream:
    """Events for ``mentors``: first saves, later re-saves, stale saves and duplicates."""

    def __init__(self, org: uuid.UUID, mentors: list[uuid.UUID], *, unique: int, seed: int) -> None:
        rng = random.Random(seed)
        first = [
            saved_event(org=org, mentor=mentors[i % len(mentors)], activity_id=uuid.uuid4(),
                        day=date(2025, 1, 1) + timedelta(days=rng.randrange(365)),
                        occurred_at=BASE_TIME)
            for i in range(unique)
        ]  # fmt: skip

        def again(e: dict[str, Any], minutes: int) -> dict[str, Any]:
            a = e["activity"]
            return saved_event(
                org=org, mentor=uuid.UUID(a["peer_mentor_id"]), activity_id=uuid.UUID(a["id"]),
                day=date(2026, 6, 1), occurred_at=BASE_TIME + timedelta(minutes=minutes),
            )  # fmt: skip

        later = [again(e, 5) for e in rng.sample(first, unique // 8)]
        stale = [again(e, -5) for e in rng.sample(first, unique // 16)]
        duplicates = [dict(e) for e in rng.sample(first, unique // 16)]
        self.events = first + later + stale + duplicates
        rng.shuffle(self.events)
        self.mentors = mentors
        self.expected = {m: unique // len(mentors) for m in mentors}
        self.event_ids = list({e["event_id"] for e in self.events})


@pytest.fixture
def org_with_badges(engine: Engine) -> Iterator[tuple[uuid.UUID, list[uuid.UUID]]]:
    org = uuid.uuid4()
    apply(
        engine,
        {
            "organisations": [organisation(org)],
            "badges": [badge(org, "first", threshold(1)), badge(org, "fifty", threshold(50))],
        },
    )
    yield org, [uuid.uuid4() for _ in range(200)]


@pytest.mark.timeout(600)
def test_two_instances_one_killed_over_and_over_lose_nothing_and_double_nothing(
    engine: Engine, org_with_badges: tuple[uuid.UUID, list[uuid.UUID]]
) -> None:
    org, mentors = org_with_badges
    stream = Stream(org, mentors, unique=12_000, seed=12)
    assert len(stream.events) >= 15_000
    queue = f"kill-{uuid.uuid4().hex[:8]}"
    queues = f"{queue},notifications"
    url = str(app.conf.broker_url)
    client = redis.Redis.from_url(url)

    def publish() -> None:
        for start in range(0, len(stream.events), 500):
            publish_to(url, queue, stream.events[start : start + 500])
            time.sleep(0.5)  # a stream, not one burst: kills land while it flows

    publisher = threading.Thread(target=publish)
    instances = [WorkerProcess(queues=queues), WorkerProcess(queues=queues)]
    rng = random.Random(4)
    kills = 0
    try:
        publisher.start()
        while kills < 30 or publisher.is_alive():
            time.sleep(rng.uniform(0.2, 1.5))
            ready = [i for i, w in enumerate(instances) if w.ready()]
            if not ready:
                continue
            victim = rng.choice(ready)
            instances[victim].kill()
            kills += 1
            instances[victim] = WorkerProcess(queues=queues, wait=False)
        publisher.join()
        wait_for(lambda: processed_count(engine, stream.event_ids), until=lambda n: n == len(stream.event_ids),
                 timeout=DRAIN_DEADLINE_S, what="every event after the kills")  # fmt: skip
        wait_for(lambda: held_for(client, queue), until=lambda n: n == 0,
                 timeout=DRAIN_DEADLINE_S, what="the queue drained, nothing unacked")  # fmt: skip
        awards = awards_and_notifications(engine, mentors)[0]
        # A kill between an ingest commit and its dispatch leaves outbox rows
        # for the relay (a beat job, not running here): relay as it would.
        wait_for(lambda: relay_then_count(engine, mentors), until=lambda an: an[1] >= an[0],
                 timeout=DRAIN_DEADLINE_S, what="a notification per award")  # fmt: skip
    finally:
        for w in instances:
            w.stop()
    assert kills >= 30
    assert counts(engine, mentors) == stream.expected
    assert awards == 2 * len(mentors)  # "first" and "fifty" for every mentor, once each
    assert awards_and_notifications(engine, mentors) == (awards, awards)
    assert_stats_equal_a_recomputation(engine)


KILLED_AFTER_POP = """
import os, signal, sys
from kombu import Connection
with Connection(sys.argv[1], transport="worker.broker.redis:Transport") as connection:
    message = connection.SimpleQueue(sys.argv[2], no_ack=False).get(timeout=10)
    print(message.delivery_tag, flush=True)
    os.kill(os.getpid(), signal.SIGKILL)  # popped, nothing acknowledged
"""


def test_a_consumer_killed_right_after_its_pop_hands_the_message_to_the_other_instance(
    engine: Engine,
) -> None:
    org, mentor = uuid.uuid4(), uuid.uuid4()
    apply(engine, {"organisations": [organisation(org)]})
    queue = f"popkill-{uuid.uuid4().hex[:8]}"
    url = str(app.conf.broker_url)
    client = redis.Redis.from_url(url)
    event = saved_event(org=org, mentor=mentor)
    publish_to(url, queue, [event])
    killed = subprocess.run(
        [sys.executable, "-c", KILLED_AFTER_POP, url, queue], cwd=ROOT, capture_output=True,
        env={**os.environ}, timeout=60,
    )  # fmt: skip
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    tag = killed.stdout.decode().strip()
    assert client.llen(queue) == 0 and client.hexists("unacked", tag)  # held by the dead one
    other = WorkerProcess(concurrency=1, queues=queue)
    try:
        wait_for(lambda: processed_count(engine, [event["event_id"]]), until=lambda n: n == 1,
                 timeout=DRAIN_DEADLINE_S, what="the message, through the other instance")  # fmt: skip
        wait_for(lambda: held_for(client, queue), until=lambda n: n == 0, what="acknowledged")
    finally:
        other.stop()
    # Requeued by whichever live worker beat first (any of them reaps), then
    # consumed by the only consumer of this queue.
    assert "ingested batch of 1: applied 1" in other.log()
    assert counts(engine, [mentor]) == {mentor: 1}


def test_a_redis_crash_mid_stream_loses_nothing(
    engine: Engine, tmp_path: Path, org_with_badges: tuple[uuid.UUID, list[uuid.UUID]]
) -> None:
    org, mentors = org_with_badges
    server = RedisServer(tmp_path / "redis")
    stream = Stream(org, mentors[:50], unique=3000, seed=5)
    queue = f"crash-{uuid.uuid4().hex[:8]}"
    env = {"BROKER_URL": server.url}
    half = len(stream.events) // 2
    instances: list[WorkerProcess] = []
    try:
        publish_to(server.url, queue, stream.events[:half])
        instances = [WorkerProcess(queues=f"{queue},notifications", env=env) for _ in range(2)]
        wait_for(
            lambda: processed_count(engine, stream.event_ids), until=lambda n: n > 0, what="a start"
        )
        server.crash()
        time.sleep(1)
        server.start()  # replays its append-only file
        publish_to(server.url, queue, stream.events[half:])
        wait_for(lambda: processed_count(engine, stream.event_ids), until=lambda n: n == len(stream.event_ids),
                 timeout=DRAIN_DEADLINE_S, what="every event after the restart")  # fmt: skip
        wait_for(lambda: held_for(server.client(), queue), until=lambda n: n == 0,
                 timeout=DRAIN_DEADLINE_S, what="nothing left on the restarted server")  # fmt: skip
        assert all(w.process.poll() is None for w in instances)
    finally:
        for w in instances:
            w.stop()
        server.stop()
    assert "Connection to broker lost" in instances[0].log() + instances[1].log()
    assert counts(engine, stream.mentors) == stream.expected
    assert_stats_equal_a_recomputation(engine)


def test_database_connections_terminated_mid_batch_are_retried(
    engine: Engine, org_with_badges: tuple[uuid.UUID, list[uuid.UUID]]
) -> None:
    org, mentors = org_with_badges
    stream = Stream(org, mentors[:50], unique=4000, seed=6)
    queue = f"pgkill-{uuid.uuid4().hex[:8]}"
    url = str(app.conf.broker_url)
    publish_to(url, queue, stream.events)
    instances = [WorkerProcess(queues=queue) for _ in range(2)]
    terminated = 0
    try:
        with engine.connect() as c:
            for _ in range(8):
                time.sleep(0.4)
                terminated += len(c.execute(text(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE datname = current_database() AND pid <> pg_backend_pid() "
                    "AND application_name NOT LIKE 'pytest%'"
                )).all())  # fmt: skip
                c.commit()
        wait_for(lambda: processed_count(engine, stream.event_ids), until=lambda n: n == len(stream.event_ids),
                 timeout=DRAIN_DEADLINE_S, what="every event after the terminations")  # fmt: skip
    finally:
        for w in instances:
            w.stop()
    assert terminated > 0
    assert counts(engine, stream.mentors) == stream.expected
    assert_stats_equal_a_recomputation(engine)


def test_sigterm_mid_stream_exits_promptly_and_the_other_instance_takes_over(
    engine: Engine, org_with_badges: tuple[uuid.UUID, list[uuid.UUID]]
) -> None:
    org, mentors = org_with_badges
    stream = Stream(org, mentors[:50], unique=4000, seed=7)
    queue = f"term-{uuid.uuid4().hex[:8]}"
    url = str(app.conf.broker_url)
    client = redis.Redis.from_url(url)
    soft = float(app.conf.worker_soft_shutdown_timeout)
    leaving = WorkerProcess(queues=queue)
    staying = WorkerProcess(queues=queue)
    try:
        publish_to(url, queue, stream.events)
        wait_for(leaving.log, until=lambda log: "ingested batch" in log, what="a batch done")
        leaving.process.send_signal(signal.SIGTERM)
        leaving.process.wait(timeout=soft + 10)  # raises if it stalls
        wait_for(lambda: processed_count(engine, stream.event_ids), until=lambda n: n == len(stream.event_ids),
                 timeout=DRAIN_DEADLINE_S, what="every event, the rest by the other instance")  # fmt: skip
        wait_for(lambda: held_for(client, queue), until=lambda n: n == 0, what="nothing held")
    finally:
        leaving.stop()
        staying.stop()
    assert leaving.process.returncode == 0
    assert "ingested batch" in staying.log()
    assert counts(engine, stream.mentors) == stream.expected


def test_a_stream_is_consumed_through_a_sentinel(engine: Engine, tmp_path: Path) -> None:
    org, mentor = uuid.uuid4(), uuid.uuid4()
    apply(engine, {"organisations": [organisation(org)]})
    server = RedisServer(tmp_path / "master")
    sentinel = Sentinel(tmp_path / "sentinel", server)
    queue = f"sentinel-{uuid.uuid4().hex[:8]}"
    events = [
        saved_event(org=org, mentor=mentor, day=date(2026, 1, 1) + timedelta(days=i))
        for i in range(300)
    ]
    env = {"BROKER_URL": sentinel.url, "BROKER_SENTINEL_MASTER": sentinel.name}
    worker = None
    try:
        worker = WorkerProcess(concurrency=1, queues=queue, env=env)
        publish_to(server.url, queue, events)
        wait_for(lambda: counts(engine, [mentor]).get(mentor, 0), until=lambda n: n == len(events),
                 timeout=DRAIN_DEADLINE_S, what="the stream, consumed through the sentinel")  # fmt: skip
        wait_for(lambda: held_for(server.client(), queue), until=lambda n: n == 0, what="acked")
    finally:
        if worker is not None:
            worker.stop()
        sentinel.stop()
        server.stop()
    # The worker was given only the sentinel's address; it found the master through it.
    assert f"SentinelTransport://:**@127.0.0.1:{sentinel.port}/0" in worker.log()
    assert sentinel.port != server.port


CELERY_NODE = """
const celery = require("celery-node");
const [url, queue, file] = process.argv.slice(2);
const client = celery.createClient(url, url, queue);
const task = client.createTask("badges.ingest_activity");
for (const event of require(file)) task.applyAsync([], { event });
setTimeout(() => client.disconnect().then(() => process.exit(0)), 1000);
"""


def test_celery_node_and_send_task_both_publish_to_the_new_transport(
    engine: Engine, tmp_path: Path
) -> None:
    org, mentor = uuid.uuid4(), uuid.uuid4()
    apply(engine, {"organisations": [organisation(org)]})
    queue = f"node-{uuid.uuid4().hex[:8]}"
    url = str(app.conf.broker_url)
    from_node = [
        saved_event(org=org, mentor=mentor, day=date(2026, 2, 1) + timedelta(days=i))
        for i in range(20)
    ]
    from_python = [
        saved_event(org=org, mentor=mentor, day=date(2026, 3, 1) + timedelta(days=i))
        for i in range(20)
    ]
    install = subprocess.run(["npm", "install", "--silent", "--no-audit", "--no-fund",
                              "celery-node"], cwd=tmp_path, capture_output=True, timeout=300)  # fmt: skip
    assert install.returncode == 0, install.stderr
    (tmp_path / "events.json").write_text(json.dumps(from_node))
    (tmp_path / "publish.js").write_text(CELERY_NODE)
    worker = WorkerProcess(concurrency=1, queues=queue)
    try:
        node = subprocess.run(["node", "publish.js", url, queue, str(tmp_path / "events.json")],
                              cwd=tmp_path, capture_output=True, timeout=120)  # fmt: skip
        assert node.returncode == 0, node.stderr
        publish_to(url, queue, from_python)
        ids = [e["event_id"] for e in from_node + from_python]
        wait_for(lambda: processed_count(engine, ids), until=lambda n: n == len(ids),
                 timeout=DRAIN_DEADLINE_S, what="both producers' events")  # fmt: skip
    finally:
        worker.stop()
    assert counts(engine, [mentor]) == {mentor: 40}
