"""Opaque keyset cursors: ``(timestamp, id)`` of the last row of a page."""

from __future__ import annotations

import base64
import json
from datetime import datetime
from typing import Annotated
from uuid import UUID

from fastapi import Query

from worker.badges.awards import DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE, InvalidCursor

#: Longer cursors than this were certainly not issued by the API.
MAX_CURSOR_LENGTH = 200

#: Query parameters every list route shares.
OrganisationParam = Annotated[
    UUID | None,
    Query(description="Required for the service role; others default to their own organisation"),
]
LimitParam = Annotated[int, Query(ge=1, le=MAX_PAGE_SIZE)]
CursorParam = Annotated[str | None, Query(max_length=MAX_CURSOR_LENGTH)]
#: The default page size of list routes.
PAGE_SIZE = DEFAULT_PAGE_SIZE


def encode_cursor(at: datetime, row_id: UUID) -> str:
    raw = json.dumps([at.isoformat(), str(row_id)]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, UUID]:
    """Raise :class:`InvalidCursor` for anything :func:`encode_cursor` did not make."""
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        at_text, id_text = json.loads(base64.urlsafe_b64decode(padded.encode()))
        at, row_id = datetime.fromisoformat(at_text), UUID(id_text)
    except (ValueError, TypeError) as exc:
        raise InvalidCursor(f"invalid cursor {cursor!r}") from exc
    if at.tzinfo is None:
        raise InvalidCursor(f"invalid cursor {cursor!r}")
    return at, row_id
