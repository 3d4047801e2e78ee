"""Reject text PostgreSQL cannot store, before it reaches the database.

PostgreSQL text and JSONB cannot hold NUL characters, and a lone surrogate
cannot be encoded as UTF-8 at all; either would surface as a driver error
(a 500).  Checking request text up front turns both into a 422 naming the field.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from api.problems import FieldProblem, Location, invalid


def _unstorable(text: str) -> bool:
    if "\x00" in text:
        return True
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def unstorable_paths(value: Any, path: str = "$") -> Iterator[str]:
    """JSONPaths of every string (key or value) in ``value`` that cannot be stored."""
    if isinstance(value, str):
        if _unstorable(value):
            yield path
    elif isinstance(value, dict):
        for key, item in value.items():
            if isinstance(key, str) and _unstorable(key):
                yield f"{path}.<key>"
            yield from unstorable_paths(item, f"{path}.{key}")
    elif isinstance(value, list | tuple):
        for index, item in enumerate(value):
            yield from unstorable_paths(item, f"{path}[{index}]")


MESSAGE = "contains a NUL character or invalid Unicode"


def require_storable(value: Any, *, location: Location = "body") -> None:
    paths = list(unstorable_paths(value))
    if paths:
        raise invalid(
            "text that cannot be stored",
            [FieldProblem(location=location, path=p, message=MESSAGE) for p in paths],
        )


def storable_text(text: str, *, location: Location, path: str) -> str:
    if _unstorable(text):
        raise invalid(
            "text that cannot be stored",
            [FieldProblem(location=location, path=path, message=MESSAGE)],
        )
    return text
