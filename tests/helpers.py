"""Builders and waits shared by tests."""

from __future__ import annotations

import subprocess
import time
import uuid
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from typing import Any, TypeVar

T = TypeVar("T")

BASE_TIME = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


def saved_event(
    *,
    activity_id: uuid.UUID | None = None,
    org: uuid.UUID,
    mentor: uuid.UUID,
    activity_type: str = "peer_session",
    day: date = date(2026, 3, 2),
    occurred_at: datetime | None = None,
    course_id: str | None = None,
    event_id: uuid.UUID | None = None,
) -> dict[str, Any]:
    return {
        "event_id": str(event_id or uuid.uuid4()),
        "event_type": "activity.saved",
        "schema_version": 1,
        "occurred_at": (occurred_at or BASE_TIME).isoformat(),
        "activity": {
            "id": str(activity_id or uuid.uuid4()),
            "organisation_id": str(org),
            "peer_mentor_id": str(mentor),
            "activity_type": activity_type,
            "activity_date": day.isoformat(),
            "course_id": course_id,
        },
    }


def event_variant(org: uuid.UUID, mentor: uuid.UUID, **changes: Any) -> dict[str, Any]:
    """A saved event with top-level fields changed; ``a_<name>`` changes ``activity.<name>``."""
    e = saved_event(org=org, mentor=mentor)
    for key, value in changes.items():
        if key.startswith("a_"):
            e["activity"][key[2:]] = value
        else:
            e[key] = value
    return e


def deleted_event(
    *,
    activity_id: uuid.UUID,
    org: uuid.UUID,
    mentor: uuid.UUID,
    occurred_at: datetime,
    event_id: uuid.UUID | None = None,
) -> dict[str, Any]:
    return {
        "event_id": str(event_id or uuid.uuid4()),
        "event_type": "activity.deleted",
        "schema_version": 1,
        "occurred_at": occurred_at.isoformat(),
        "activity": {
            "id": str(activity_id),
            "organisation_id": str(org),
            "peer_mentor_id": str(mentor),
        },
    }


def badge(org: uuid.UUID, code: str, criteria: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {
        "organisation_id": str(org),
        "code": code,
        "name": code.title(),
        "criteria": criteria,
        **extra,
    }


def threshold(min_count: int, *types: str) -> dict[str, Any]:
    return {
        "type": "threshold",
        "version": 1,
        "activity_types": list(types),
        "min_count": min_count,
    }


def streak(period: str, min_length: int, *types: str) -> dict[str, Any]:
    return {
        "type": "streak",
        "version": 1,
        "period": period,
        "activity_types": list(types),
        "min_length": min_length,
    }


def weeks(start: date, count: int) -> list[date]:
    return [start + timedelta(weeks=i) for i in range(count)]


def wait_for(
    probe: Callable[[], T], *, until: Callable[[T], bool], timeout: float = 60.0, what: str = ""
) -> T:
    """Poll ``probe`` until ``until(value)``; fail with the last value after ``timeout``.

    A bounded wait for asynchronous work done by real worker processes, not
    an assertion about speed: the timeout is generous and only stops a hang.
    """
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if until(value):
            return value
        if time.monotonic() > deadline:
            raise AssertionError(
                f"gave up waiting for {what or 'condition'}; last value: {value!r}"
            )
        time.sleep(0.1)


def stop_process(process: subprocess.Popen[Any], *, timeout: float = 30.0) -> None:
    """SIGTERM a server or worker the test started; SIGKILL it if it outlasts ``timeout``."""
    if process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
