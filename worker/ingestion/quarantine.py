"""Quarantine: events that break the contract are kept with a reason, never retried."""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from sqlalchemy import Connection

from schema.tables import quarantined_events


def _raw_text(payload: Any) -> str:
    if isinstance(payload, bytes):
        return payload.decode("utf-8", errors="replace")
    if isinstance(payload, str):
        return payload
    try:
        return json.dumps(payload, default=str, sort_keys=True)
    except (TypeError, ValueError):
        return repr(payload)


def _event_id(payload: Any) -> str | None:
    if isinstance(payload, dict) and payload.get("event_id") is not None:
        return str(payload["event_id"])[:100]
    return None


def quarantine(
    conn: Connection, items: Iterable[tuple[Any, str | None, str]], *, now: datetime
) -> int:
    """Store ``(raw payload, task id, reason)`` items; returns how many."""
    rows = [
        {
            "event_id": _event_id(payload),
            "task_id": task_id,
            "raw_payload": _raw_text(payload),
            "reason": reason,
            "received_at": now,
        }
        for payload, task_id, reason in items
    ]
    if rows:
        conn.execute(quarantined_events.insert(), rows)
    return len(rows)
