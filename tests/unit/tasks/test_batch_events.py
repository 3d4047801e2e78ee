"""Per-message signals around a batch: what Sentry and OpenTelemetry hook into."""

from __future__ import annotations

from typing import Any

import pytest
from celery import signals, states

from worker.tasks.batch_events import run_with_signals, send_failed, send_succeeded
from worker.tasks.batching import BatchItem

ITEMS = [BatchItem(f"task-{i}", (), {"event": {"event_id": f"e{i}"}}, 0) for i in range(3)]


class _Recorder:
    def __init__(self) -> None:
        self.calls: list[tuple[str, dict[str, Any]]] = []

    def handler(self, name: str) -> Any:
        def receive(sender: Any = None, **kwargs: Any) -> None:
            self.calls.append((name, kwargs))

        return receive


@pytest.fixture
def recorder() -> Any:
    rec = _Recorder()
    handlers = {
        "prerun": rec.handler("prerun"),
        "postrun": rec.handler("postrun"),
        "success": rec.handler("success"),
        "failure": rec.handler("failure"),
    }
    signals.task_prerun.connect(handlers["prerun"], weak=False)
    signals.task_postrun.connect(handlers["postrun"], weak=False)
    signals.task_success.connect(handlers["success"], weak=False)
    signals.task_failure.connect(handlers["failure"], weak=False)
    yield rec
    signals.task_prerun.disconnect(handlers["prerun"])
    signals.task_postrun.disconnect(handlers["postrun"])
    signals.task_success.disconnect(handlers["success"])
    signals.task_failure.disconnect(handlers["failure"])


def test_a_successful_batch_sends_prerun_success_and_postrun_per_message(recorder: Any) -> None:
    assert run_with_signals(object(), ITEMS, lambda: {"applied": 3}) == {"applied": 3}
    by_kind: dict[str, list[dict[str, Any]]] = {}
    for name, kwargs in recorder.calls:
        by_kind.setdefault(name, []).append(kwargs)
    assert [k["task_id"] for k in by_kind["prerun"]] == ["task-0", "task-1", "task-2"]
    assert [k["task_id"] for k in by_kind["postrun"]] == ["task-0", "task-1", "task-2"]
    assert {k["state"] for k in by_kind["postrun"]} == {states.SUCCESS}
    assert by_kind["prerun"][1]["kwargs"] == {"event": {"event_id": "e1"}}
    assert len(by_kind["success"]) == 3
    assert "failure" not in by_kind


def test_a_failing_batch_sends_failure_per_message_and_reraises(recorder: Any) -> None:
    def boom() -> None:
        raise RuntimeError("database on fire")

    with pytest.raises(RuntimeError):
        run_with_signals(object(), ITEMS, boom)
    failures = [k for name, k in recorder.calls if name == "failure"]
    assert [k["task_id"] for k in failures] == ["task-0", "task-1", "task-2"]
    assert all(isinstance(k["exception"], RuntimeError) for k in failures)
    postruns = [k for name, k in recorder.calls if name == "postrun"]
    assert {k["state"] for k in postruns} == {states.FAILURE}


class _Request:
    def __init__(self, task_id: str) -> None:
        self.id = task_id
        self.sent: list[tuple[str, dict[str, Any]]] = []

    def send_event(self, kind: str, **fields: Any) -> None:
        self.sent.append((kind, fields))


def test_succeeded_and_failed_events_go_out_for_every_request() -> None:
    requests = [_Request("a"), _Request("b")]
    send_succeeded(requests, result={"applied": 2}, runtime=0.5)
    send_failed(requests, RuntimeError("lost"))
    for request in requests:
        kinds = [kind for kind, _ in request.sent]
        assert kinds == ["task-succeeded", "task-failed"]
        assert request.sent[0][1]["runtime"] == 0.5
        assert "lost" in request.sent[1][1]["exception"]
