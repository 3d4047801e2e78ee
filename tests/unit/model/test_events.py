from __future__ import annotations

import json
import uuid
from typing import Any

import pytest

from tests.helpers import saved_event
from worker.model.events import (
    ActivityDeleted,
    ActivitySaved,
    InvalidEvent,
    event_json_schema,
    parse_event,
)

ORG, MENTOR = uuid.uuid4(), uuid.uuid4()


def good() -> dict[str, Any]:
    return saved_event(org=ORG, mentor=MENTOR)


def test_a_saved_event_parses() -> None:
    event = parse_event(good())
    assert isinstance(event, ActivitySaved)
    assert event.activity.peer_mentor_id == MENTOR


def test_a_delete_needs_only_the_ids() -> None:
    event = parse_event(
        {
            **{k: v for k, v in good().items() if k != "activity"},
            "event_type": "activity.deleted",
            "activity": {
                "id": str(uuid.uuid4()),
                "organisation_id": str(ORG),
                "peer_mentor_id": str(MENTOR),
            },
        }
    )
    assert isinstance(event, ActivityDeleted)


def _with(**changes: Any) -> dict[str, Any]:
    event = good()
    for dotted, value in changes.items():
        target = event
        *path, last = dotted.split("__")
        for part in path:
            target = target[part]
        if value is ...:
            del target[last]
        else:
            target[last] = value
    return event


MALFORMED = {
    "unknown schema version": (_with(schema_version=2), "schema_version"),
    "unknown top-level field": (_with(source="app"), "source"),
    "malformed event id": (_with(event_id="not-a-uuid"), "event_id"),
    "malformed mentor id": (_with(activity__peer_mentor_id="123"), "activity.peer_mentor_id"),
    "malformed date": (_with(activity__activity_date="2026-02-30"), "activity.activity_date"),
    "missing occurred_at": (_with(occurred_at=...), "occurred_at"),
    "naive occurred_at": (_with(occurred_at="2026-03-02T10:15:00"), "occurred_at"),
    "unknown event type": (_with(event_type="activity.archived"), "activity.archived"),
    "bad activity type": (_with(activity__activity_type="Peer-Session"), "activity.activity_type"),
    "training without course": (
        _with(activity__activity_type="training_completed"),
        "training_completed activity needs a course_id",
    ),
    "course id too long": (_with(activity__course_id="c" * 129), "activity.course_id"),
    "missing activity": (_with(activity=...), "activity"),
    "unknown activity field": (_with(activity__colour="red"), "activity.colour"),
}


@pytest.mark.parametrize("case", sorted(MALFORMED))
def test_malformed_events_have_readable_reasons(case: str) -> None:
    payload, expected = MALFORMED[case]
    with pytest.raises(InvalidEvent) as info:
        parse_event(payload)
    assert expected in info.value.reason


@pytest.mark.parametrize("payload", ["{not json", "[1, 2]", b"\xff\xfe", 42])
def test_non_objects_are_rejected(payload: Any) -> None:
    with pytest.raises(InvalidEvent):
        parse_event(payload)


def test_json_schema_is_exported_and_accepts_the_contract_example() -> None:
    import jsonschema

    schema = event_json_schema()
    jsonschema.validate(json.loads(json.dumps(good())), schema)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(_with(schema_version=2), schema)
