"""An injectable clock, so every "now" can be pinned in tests."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, tzinfo
from typing import Protocol


class Clock(Protocol):
    def now(self) -> datetime:
        """The current instant, timezone-aware."""
        ...


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(UTC)


@dataclass(frozen=True)
class FixedClock:
    instant: datetime

    def __post_init__(self) -> None:
        if self.instant.tzinfo is None:
            raise ValueError("FixedClock needs a timezone-aware datetime")

    def now(self) -> datetime:
        return self.instant


def local_today(clock: Clock, tz: tzinfo) -> date:
    """Today's calendar date in ``tz`` (award periods are local dates)."""
    return clock.now().astimezone(tz).date()


def as_utc(value: datetime) -> datetime:
    """``value`` made timezone-aware: SQLite hands back naive datetimes, and all stored are UTC."""
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)
