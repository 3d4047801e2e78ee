"""JSON log lines: the contract's fields, plus whatever is bound for the message at hand."""

from __future__ import annotations

import io
import json
import logging
import logging.config

import pytest

from worker.observability.context import bound
from worker.observability.logging import configure_logging, uvicorn_log_config


@pytest.fixture
def restore_root() -> object:
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield root
    root.handlers[:] = handlers
    root.setLevel(level)


def _lines(stream: io.StringIO) -> list[dict[str, object]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_json_lines_carry_the_bound_task_and_event_ids(restore_root: logging.Logger) -> None:
    configure_logging(logging.INFO, "json")
    stream = io.StringIO()
    restore_root.handlers[0].setStream(stream)  # type: ignore[attr-defined]
    log = logging.getLogger("worker.test")
    with bound(task_id="t-1", event_id="e-1"):
        log.info("quarantined: %s", "unknown organisation")
    log.warning("unbound")
    first, second = _lines(stream)
    assert first["message"] == "quarantined: unknown organisation"
    assert (first["level"], first["logger"]) == ("INFO", "worker.test")
    assert (first["task_id"], first["event_id"]) == ("t-1", "e-1")
    assert str(first["timestamp"]).endswith("+00:00")
    assert "task_id" not in second and second["level"] == "WARNING"


def test_text_format_stays_plain(restore_root: logging.Logger) -> None:
    configure_logging(logging.INFO, "text")
    stream = io.StringIO()
    restore_root.handlers[0].setStream(stream)  # type: ignore[attr-defined]
    with bound(task_id="t-2"):
        logging.getLogger("worker.test").info("hello")
    assert stream.getvalue().rstrip().endswith("INFO worker.test: hello")


def test_uvicorn_config_sends_uvicorn_loggers_through_json(restore_root: logging.Logger) -> None:
    access = logging.getLogger("uvicorn.access")
    saved = access.handlers[:], access.propagate
    try:
        logging.config.dictConfig(uvicorn_log_config("json"))
        stream = io.StringIO()
        restore_root.handlers[0].setStream(stream)  # type: ignore[attr-defined]
        access.info("GET /livez 200")
        (line,) = _lines(stream)
        assert (line["logger"], line["message"]) == ("uvicorn.access", "GET /livez 200")
    finally:
        access.handlers[:], access.propagate = saved
