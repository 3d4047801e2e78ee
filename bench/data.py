"""Synthetic organisations, badge definitions, events and history for the scenarios.

Deterministic where it matters (ids derived from a seed) so runs are comparable.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from typing import Any

ORG = uuid.UUID("b3e1c0de-0000-4000-8000-000000000001")
MENTOR_NAMESPACE = uuid.UUID("b3e1c0de-0000-4000-8000-0000000000ff")
ACTIVITY_TYPES = ("peer_session", "phone_call", "group_meeting", "assignment_completed")
#: Relative frequency of each type (training_completed is added by the history generator).
TYPE_WEIGHTS = (50, 25, 15, 10)
COURSES = ("course-a", "course-b", "course-c", "course-d")
EVENT_TIME = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)


def mentor_id(number: int, *, run: str = "") -> uuid.UUID:
    """The ``number``-th synthetic mentor (stable across runs with the same ``run``)."""
    return uuid.uuid5(MENTOR_NAMESPACE, f"{run}:{number}")


def badges(org: uuid.UUID = ORG) -> list[dict[str, Any]]:
    """A realistic mix: thresholds, streaks (weeks and months), courses, a combination."""

    def threshold(code: str, n: int, *types: str) -> dict[str, Any]:
        criteria = {
            "type": "threshold",
            "version": 1,
            "activity_types": list(types),
            "min_count": n,
        }
        return {"organisation_id": str(org), "code": code, "name": code, "criteria": criteria}

    def streak(code: str, period: str, n: int, *types: str) -> dict[str, Any]:
        criteria = {"type": "streak", "version": 1, "period": period,
                    "activity_types": list(types), "min_length": n}  # fmt: skip
        return {"organisation_id": str(org), "code": code, "name": code, "criteria": criteria}

    courses = {"type": "training_completion", "version": 1, "course_ids": list(COURSES[:2])}
    groups = threshold("", 5, "group_meeting")["criteria"]
    months = streak("", "month", 3)["criteria"]
    return [
        threshold("first-activity", 1),
        threshold("ten-sessions", 10, "peer_session"),
        threshold("hundred-activities", 100),
        threshold("thousand-activities", 1000),
        streak("four-weeks", "week", 4),
        streak("twelve-weeks", "week", 12, "peer_session", "phone_call"),
        streak("six-months", "month", 6),
        {"organisation_id": str(org), "code": "trained", "name": "trained", "criteria": courses},
        {
            "organisation_id": str(org),
            "code": "all-rounder",
            "name": "all-rounder",
            "criteria": {"type": "all_of", "version": 1, "criteria": [groups, months]},
        },
    ]


def configuration(*, with_badges: bool = True, org: uuid.UUID = ORG) -> dict[str, Any]:
    """An organisation (and its badges) as ``badges definitions apply`` reads it."""
    return {
        "organisations": [{"id": str(org), "name": "Bench organisation"}],
        "badges": badges(org) if with_badges else [],
    }


def saved_event(
    *, mentor: uuid.UUID, day: date, activity_type: str, org: uuid.UUID = ORG
) -> dict[str, Any]:
    """One ``activity.saved`` event per the event contract (README, *The event contract*), for a new activity."""
    return {
        "event_id": str(uuid.uuid4()),
        "event_type": "activity.saved",
        "schema_version": 1,
        "occurred_at": EVENT_TIME.isoformat(),
        "activity": {
            "id": str(uuid.uuid4()),
            "organisation_id": str(org),
            "peer_mentor_id": str(mentor),
            "activity_type": activity_type,
            "activity_date": day.isoformat(),
            "course_id": None,
        },
    }


def event_stream(
    count: int, *, mentors: int, seed: int = 1, run: str = "", start: date = date(2026, 1, 5)
) -> Iterator[dict[str, Any]]:
    """``count`` new-activity events spread round-robin over ``mentors`` mentors."""
    rng = random.Random(seed)
    ids = [mentor_id(n, run=run) for n in range(mentors)]
    for i in range(count):
        yield saved_event(
            mentor=ids[i % mentors],
            day=start + timedelta(days=rng.randrange(320)),
            activity_type=rng.choices(ACTIVITY_TYPES, TYPE_WEIGHTS)[0],
        )


def history_activities(
    count: int, *, mentors: list[uuid.UUID], first: date, last: date, seed: int = 2
) -> Iterator[dict[str, Any]]:
    """``count`` historical ``activity`` objects (import format) over [first, last]."""
    rng = random.Random(seed)
    span = (last - first).days + 1
    for i in range(count):
        kind = rng.choices((*ACTIVITY_TYPES, "training_completed"), (*TYPE_WEIGHTS, 3))[0]
        yield {
            "id": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
            "organisation_id": str(ORG),
            "peer_mentor_id": str(mentors[i % len(mentors)]),
            "activity_type": kind,
            "activity_date": (first + timedelta(days=rng.randrange(span))).isoformat(),
            "course_id": rng.choice(COURSES) if kind == "training_completed" else None,
        }
