"""Opaque keyset cursors: ``(timestamp, id)`` of the last row of a page."""

from __future__ import annotations

import base64
import json
from datetime import datetime
from uuid import UUID

from worker.badges.awards import InvalidCursor

#: Longer cursors than this were certainly not issued by the API.
MAX_CURSOR_LENGTH = 200


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
