"""The activity event contract as pydantic models.

Producers publish a Celery task ``badges.ingest_activity`` on queue
``activity_events`` with keyword argument ``event``.  :func:`parse_event`
validates one such payload; :func:`event_json_schema` exports the JSON Schema
that producers in other languages validate against.
"""

from __future__ import annotations

import json
from datetime import date
from typing import Annotated, Any, Literal, Self
from uuid import UUID

from pydantic import (
    AwareDatetime,
    Field,
    TypeAdapter,
    ValidationError,
    model_validator,
)

from worker.core.models import FrozenModel
from worker.core.validation import describe_validation_error

TASK_NAME = "badges.ingest_activity"
QUEUE = "activity_events"
SCHEMA_VERSION = 1
ACTIVITY_TYPE_PATTERN = r"^[a-z][a-z0-9_]{0,63}$"
TRAINING_COMPLETED = "training_completed"

ActivityType = Annotated[str, Field(pattern=ACTIVITY_TYPE_PATTERN)]
CourseId = Annotated[str, Field(min_length=1, max_length=128)]


class ActivityRef(FrozenModel):
    """Identifies an activity; enough for a delete."""

    id: UUID
    organisation_id: UUID
    peer_mentor_id: UUID


class DeletedActivity(ActivityRef):
    """A deleted activity: the facts may be sent along, but are not needed."""

    activity_type: ActivityType | None = None
    activity_date: date | None = None
    course_id: CourseId | None = None


class Activity(ActivityRef):
    """The facts of a saved activity.  Also one line of a history import."""

    activity_type: ActivityType
    activity_date: date
    course_id: CourseId | None = None

    @model_validator(mode="after")
    def _training_needs_course(self) -> Self:
        if self.activity_type == TRAINING_COMPLETED and self.course_id is None:
            raise ValueError("a training_completed activity needs a course_id")
        return self


class _Event(FrozenModel):
    event_id: UUID
    schema_version: Literal[1]
    occurred_at: AwareDatetime


class ActivitySaved(_Event):
    event_type: Literal["activity.saved"]
    activity: Activity


class ActivityDeleted(_Event):
    event_type: Literal["activity.deleted"]
    activity: DeletedActivity


ActivityEvent = Annotated[ActivitySaved | ActivityDeleted, Field(discriminator="event_type")]
EVENT_ADAPTER: TypeAdapter[ActivitySaved | ActivityDeleted] = TypeAdapter(ActivityEvent)


class InvalidEvent(ValueError):
    """An event that breaks the contract; ``reason`` is readable by a person."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def parse_event(payload: Any) -> ActivitySaved | ActivityDeleted:
    """Validate one event (a dict, or a JSON string); raise :class:`InvalidEvent`."""
    if isinstance(payload, str | bytes):
        try:
            payload = json.loads(payload)
        except ValueError as exc:
            raise InvalidEvent(f"event is not valid JSON: {exc}") from None
    if not isinstance(payload, dict):
        raise InvalidEvent(f"event must be a JSON object, got {type(payload).__name__}")
    version = payload.get("schema_version")
    if "schema_version" in payload and version != SCHEMA_VERSION:
        raise InvalidEvent(
            f"schema_version: unsupported schema version {version!r}; supported: {SCHEMA_VERSION}"
        )
    try:
        return EVENT_ADAPTER.validate_python(payload)
    except ValidationError as exc:
        raise InvalidEvent("; ".join(describe_validation_error(exc))) from None


def event_json_schema() -> dict[str, Any]:
    schema = EVENT_ADAPTER.json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "ActivityEvent"
    schema["description"] = (
        f"Keyword argument `event` of Celery task {TASK_NAME!r} on queue {QUEUE!r} "
        "(protocol 2, JSON serializer)."
    )
    return schema
