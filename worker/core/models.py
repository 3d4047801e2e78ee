"""The base of the project's value models and messages, and batching of long lists."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import TypeVar

from pydantic import BaseModel, ConfigDict

T = TypeVar("T")

#: Rows or mentors handled per statement when a list may be long: keeps every
#: statement well under PostgreSQL's 65,535 bind parameters and its plans small.
BATCH_SIZE = 1000


class FrozenModel(BaseModel):
    """Immutable, and unknown fields are an error (messages from other systems included)."""

    model_config = ConfigDict(frozen=True, extra="forbid")


def batches(items: Sequence[T], size: int = BATCH_SIZE) -> Iterator[Sequence[T]]:
    """``items`` in consecutive slices of at most ``size``."""
    for start in range(0, len(items), size):
        yield items[start : start + size]
