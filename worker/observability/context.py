"""Fields bound to every log line written while a message or event is handled.

A context variable, not thread-local state, so it follows the code that
handles a message (pool process, thread or coroutine) and nothing else; a
:class:`ContextFilter` on the handlers copies the bound fields onto each
record, where the JSON formatter picks them up (the text format ignores them).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

_fields: ContextVar[dict[str, Any] | None] = ContextVar("badges_log_fields", default=None)


@contextmanager
def bound(**fields: Any) -> Iterator[None]:
    """Add ``fields`` (e.g. ``task_id``, ``event_id``) to every log line inside the block."""
    current = _fields.get() or {}
    token = _fields.set({**current, **{k: v for k, v in fields.items() if v is not None}})
    try:
        yield
    finally:
        _fields.reset(token)


def bound_fields() -> dict[str, Any]:
    return dict(_fields.get() or {})


class ContextFilter(logging.Filter):
    """Copies the bound fields onto each record (never overwriting what a call passed)."""

    def filter(self, record: logging.LogRecord) -> bool:
        for name, value in (_fields.get() or {}).items():
            if not hasattr(record, name):
                setattr(record, name, value)
        return True
