"""Quarantine: events that break the contract are kept with a reason, never retried.

A row keeps at most ``QUARANTINE_MAX_RAW_BYTES`` of the raw payload (64 KiB by
default): a hostile multi-megabyte message must not become a multi-megabyte
row.  A row whose payload was cut says so at the end of its ``reason``.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from sqlalchemy import Connection

from schema.tables import quarantined_events
from worker.core.settings import get_settings


def _raw_text(payload: Any) -> str:
    if isinstance(payload, bytes):
        return payload.decode("utf-8", errors="replace")
    if isinstance(payload, str):
        return payload
    try:
        return json.dumps(payload, default=str, sort_keys=True)
    except (TypeError, ValueError, RecursionError):
        try:
            return repr(payload)
        except RecursionError:  # nested too deep even for repr
            return f"<unrepresentable {type(payload).__name__}>"


def bounded_raw(payload: Any, *, max_bytes: int | None = None) -> tuple[str, str]:
    """The raw text of ``payload`` cut to ``max_bytes`` (UTF-8), and a note saying so (or "").

    Undecodable bytes become U+FFFD and NUL characters (which PostgreSQL text
    cannot hold, and a pickle is full of) become U+2400, so any body fits a row.
    """
    limit = get_settings().quarantine_max_raw_bytes if max_bytes is None else max_bytes
    note = ""
    if isinstance(payload, bytes) and len(payload) > limit:
        size, text = len(payload), payload[:limit].decode("utf-8", errors="replace")
        note = f" [raw payload truncated: first {limit} of {size} bytes kept]"
    else:
        text = _raw_text(payload)
        encoded = text.encode("utf-8", errors="replace")
        if len(encoded) > limit:
            size, text = len(encoded), encoded[:limit].decode("utf-8", errors="ignore")
            note = f" [raw payload truncated: first {limit} of {size} bytes kept]"
    text = text.replace("\x00", "\u2400")
    # U+FFFD/U+2400 take 3 bytes where the original took 1: cut again if needed.
    encoded = text.encode("utf-8", errors="replace")
    if len(encoded) > limit:
        text = encoded[:limit].decode("utf-8", errors="ignore")
        note = note or f" [raw payload truncated to {limit} bytes]"
    return text, note


def _event_id(payload: Any) -> str | None:
    if isinstance(payload, str | bytes):
        try:
            payload = json.loads(payload)
        except (ValueError, RecursionError):
            return None
    if isinstance(payload, dict) and payload.get("event_id") is not None:
        return str(payload["event_id"])[:100]
    return None


def quarantine(
    conn: Connection, items: Iterable[tuple[Any, str | None, str]], *, now: datetime
) -> int:
    """Store ``(raw payload, task id, reason)`` items; returns how many."""
    rows = []
    for payload, task_id, reason in items:
        raw, note = bounded_raw(payload)
        rows.append(
            {
                "event_id": _event_id(payload),
                "task_id": task_id,
                "raw_payload": raw,
                "reason": reason + note,
                "received_at": now,
            }
        )
    if rows:
        conn.execute(quarantined_events.insert(), rows)
    return len(rows)
