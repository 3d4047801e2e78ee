"""A real worker with task events, metrics, JSON logs and a heartbeat file, all switched on."""

from __future__ import annotations

import json
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import Engine, func, select

from schema.tables import earned_badges
from tests.helpers import badge, saved_event, threshold, wait_for
from tests.integration.harness import WorkerProcess, apply, organisation
from worker.app import app
from worker.model.events import TASK_NAME
from worker.observability.heartbeat import HEARTBEAT_INTERVAL_S


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class EventLog:
    """Celery events captured by a real ``app.events.Receiver`` in a thread."""

    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        self._receiver: Any = None
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _on_event(self, event: dict[str, Any]) -> None:
        with self._lock:
            self.events.append(event)

    def _run(self) -> None:
        with app.connection_for_read() as connection:
            self._receiver = app.events.Receiver(connection, handlers={"*": self._on_event})
            self._receiver.capture(limit=None, timeout=None, wakeup=False)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        if self._receiver is not None:
            self._receiver.should_stop = True
        self._thread.join(timeout=10)

    def of(self, kind: str, hostname: str | None = None) -> list[dict[str, Any]]:
        with self._lock:
            return [
                e
                for e in self.events
                if e["type"] == kind
                and (hostname is None or e.get("hostname", "").startswith(hostname))
            ]


@pytest.fixture
def event_log() -> Iterator[EventLog]:
    log = EventLog()
    log.start()
    yield log
    log.stop()


def _metric(text: str, name: str, **labels: str) -> float:
    total = 0.0
    for line in text.splitlines():
        if line.startswith("#") or not line.startswith(name):
            continue
        series, value = line.rsplit(" ", 1)
        metric, _, label_text = series.partition("{")
        if metric != name:
            continue
        if all(f'{k}="{v}"' in label_text for k, v in labels.items()):
            total += float(value)
    return total


def test_events_metrics_json_logs_and_heartbeat_of_a_batched_stream(
    clean_db: Engine, event_log: EventLog, tmp_path: Path
) -> None:
    org, mentors = uuid.uuid4(), [uuid.uuid4() for _ in range(4)]
    apply(
        clean_db,
        {
            "organisations": [organisation(org)],
            "badges": [badge(org, "first", threshold(1, "peer_session"))],
        },
    )
    port, heartbeat = _free_port(), tmp_path / "worker.alive"
    # A queue of its own: the session's shared worker must not take any of these messages.
    queue = f"observed-{uuid.uuid4().hex[:8]}"
    worker = WorkerProcess(
        concurrency=2,
        queues=queue,
        env={
            "WORKER_METRICS_PORT": str(port),
            "WORKER_HEARTBEAT_FILE": str(heartbeat),
            "LOG_FORMAT": "json",
            "INGEST_FLUSH_INTERVAL_S": "0.5",
            "INGEST_BATCH_SIZE": "10",  # a stream of several batches
        },
    )
    stopped = False
    try:
        # The receiver is subscribed once it hears the worker's own heartbeat events.
        wait_for(
            lambda: event_log.of("worker-heartbeat", worker.name),
            until=bool,
            what="the event receiver to hear the worker",
        )
        events = [
            saved_event(org=org, mentor=mentors[i % 4], day=date(2026, 3, 2) + timedelta(days=i))
            for i in range(40)
        ]
        duplicate = events[0]
        with app.producer_or_acquire() as producer:
            task_ids = [
                app.send_task(TASK_NAME, kwargs={"event": e}, queue=queue, producer=producer).id
                for e in [*events, duplicate]
            ]
        succeeded = wait_for(
            lambda: {e["uuid"] for e in event_log.of("task-succeeded")} & set(task_ids),
            until=lambda done: len(done) == len(task_ids),
            what="task-succeeded for every message",
        )
        received = {e["uuid"] for e in event_log.of("task-received")}
        assert set(task_ids) <= received
        # The producer's side too (task_send_sent_event), as Flower shows it.
        assert set(task_ids) <= {e["uuid"] for e in event_log.of("task-sent")}
        assert succeeded == set(task_ids)
        names = {e.get("name") for e in event_log.of("task-received") if e["uuid"] in task_ids}
        assert names == {TASK_NAME}

        scrape = wait_for(
            lambda: httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text,
            until=lambda text: _metric(text, "badges_events_total") == len(task_ids),
            what="every consumed message counted",
        )
        assert _metric(scrape, "badges_events_total", outcome="applied") == 40
        assert _metric(scrape, "badges_events_total", outcome="duplicate") == 1
        with clean_db.connect() as c:
            written = c.execute(select(func.count()).select_from(earned_badges)).scalar_one()
        assert written == 4
        assert _metric(scrape, "badges_awards_total", source="evaluation") == written
        assert _metric(scrape, "badges_award_conflicts_total") == 0
        assert _metric(scrape, "badges_batch_seconds_count") >= 3
        assert _metric(scrape, "badges_event_age_seconds_count") == len(task_ids)

        lines = [json.loads(line) for line in worker.log().splitlines() if line.startswith("{")]
        assert lines, worker.log()
        for line in lines:
            assert {"timestamp", "level", "logger", "message"} <= set(line)
        logged_events = {
            event_id
            for line in lines
            for event_id in [*line.get("event_ids", []), line.get("event_id")]
            if event_id
        }
        assert {e["event_id"] for e in events} <= logged_events
        batch_lines = [line for line in lines if line["message"].startswith("ingested batch")]
        assert len(batch_lines) >= 3 and all("task_ids" in b or "task_id" in b for b in batch_lines)

        first_touch = heartbeat.stat().st_mtime
        wait_for(
            lambda: heartbeat.stat().st_mtime,
            until=lambda mtime: mtime > first_touch,
            timeout=HEARTBEAT_INTERVAL_S * 4,
            what="the heartbeat file to be touched again",
        )
        worker.stop()
        stopped = True
        after_stop = heartbeat.stat().st_mtime
        time.sleep(HEARTBEAT_INTERVAL_S * 2 + 1)
        assert heartbeat.stat().st_mtime == after_stop, "a stopped worker's heartbeat goes stale"
    finally:
        if not stopped:
            worker.stop()
