"""The batch strategy isolates a poison message, without a worker: a fake pool and timer."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

from kombu.message import Message

from worker.app import app
from worker.tasks.batching import BatchItem, BatchTask


class PoisonTask(BatchTask):
    """Items whose event is "unpicklable" fail the hand-off; "raises" fail in the pool."""

    name = "tests.poison_batch"
    flush_every = 100
    flush_interval = 60.0

    def run_batch(self, items: list[BatchItem]) -> Any:  # never run: the fake pool judges
        raise AssertionError


class FakePool:
    def __init__(self) -> None:
        self.ran: list[list[BatchItem]] = []

    def apply_async(
        self, fn: Any, *, args: tuple[str, list[BatchItem]], callback: Callable[[Any], None],
        error_callback: Callable[[Any], None],
    ) -> None:  # fmt: skip
        items = args[1]
        events = [i.kwargs.get("event") for i in items]
        if "unpicklable" in events:
            raise RecursionError("maximum recursion depth exceeded while pickling an object")
        if "raises" in events:
            error_callback(ValueError("boom"))
            return
        self.ran.append(items)
        callback(None)


class FakeTimer:
    """Keeps the flush the strategy schedules, so the test can fire it."""

    def __init__(self) -> None:
        self.pending: list[Callable[[], None]] = []

    def call_after(self, delay: float, fun: Callable[[], None]) -> Any:
        self.pending.append(fun)
        return SimpleNamespace(cancel=lambda: None)

    def fire(self) -> None:
        while self.pending:
            self.pending.pop(0)()

    def call_at(self, eta: Any, fun: Any, args: Any) -> None:
        raise AssertionError("no eta here")


def message(
    event: Any, *, body: bytes | None = None, content_type: str = "application/json"
) -> Message:
    task_id = str(uuid.uuid4())
    raw = body if body is not None else json.dumps([[], {"event": event}, {}]).encode()
    m = Message(  # type: ignore[no-untyped-call]
        body=raw, content_type=content_type, content_encoding="utf-8",
        headers={"task": PoisonTask.name, "id": task_id, "retries": 0},
        delivery_info={"routing_key": "q"}, accept=["application/json"],
    )  # fmt: skip
    return m


poison_task = app.register_task(PoisonTask())


def run_strategy(messages: list[Message]) -> tuple[FakePool, dict[str, str]]:
    task = poison_task
    pool, timer = FakePool(), FakeTimer()
    consumer = SimpleNamespace(
        hostname="test", event_dispatcher=SimpleNamespace(enabled=False, send=lambda *a, **k: None),
        connection_errors=(), pool=pool, timer=timer,
    )  # fmt: skip
    handler = task.Strategy(task, app, consumer)
    outcome: dict[str, str] = {}
    for m in messages:
        task_id = m.headers["id"]

        def ack(*_: Any, task_id: str = task_id) -> None:
            outcome[task_id] = "acked"

        def reject(*_: Any, requeue: bool = False, task_id: str = task_id) -> None:
            outcome[task_id] = "requeued" if requeue else "dropped"

        handler(m, None, ack, reject, [])
    timer.fire()  # the flush interval elapses
    return pool, outcome


def test_a_message_failing_the_hand_off_is_split_out_and_rejected_its_mates_run() -> None:
    good = [message(f"good-{i}") for i in range(6)]
    poison = message("unpicklable")
    failing = message("raises")
    pool, outcome = run_strategy([*good[:3], poison, *good[3:], failing])
    ran = [i for batch in pool.ran for i in batch]
    by_id = {i.task_id: i for i in ran}
    assert {m.headers["id"] for m in good} <= {i.task_id for i in ran if i.reason is None}
    for culprit in (poison, failing):
        item = by_id[culprit.headers["id"]]
        assert item.reason is not None and "processing failed" in item.reason
        assert item.kwargs == {}  # what reaches the pool for it is its reason and raw text
    assert set(outcome.values()) == {"acked"}
    assert len(outcome) == 8


def test_an_undecodable_body_is_handed_over_for_quarantine_and_acked() -> None:
    broken = message(None, body=b'[[], {"event": ')
    pickled = message(None, body=b"\x80\x04K\x01.", content_type="application/x-python-serialize")
    pool, outcome = run_strategy([broken, pickled])
    items = {i.task_id: i for batch in pool.ran for i in batch}
    assert "could not be decoded" in (items[broken.headers["id"]].reason or "")
    assert items[broken.headers["id"]].raw == '[[], {"event": '
    assert "application/x-python-serialize" in (items[pickled.headers["id"]].reason or "")
    assert outcome == {broken.headers["id"]: "acked", pickled.headers["id"]: "acked"}
