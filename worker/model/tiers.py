"""Recognition tiers and award periods: the domain models, pure.

Boundaries: an award period covers ``start_date`` through ``end_date``, both
*inclusive*, as local calendar dates in the configured timezone.  A period is
currently active when its stored admin flag ``is_active`` is on and today's
local date lies in that closed range, so it becomes active at local midnight
starting ``start_date`` and stops at local midnight ending ``end_date``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, tzinfo
from enum import IntEnum
from typing import Self
from uuid import UUID

from pydantic import Field, computed_field, model_validator

from worker.core.clock import Clock, local_today
from worker.core.models import FrozenModel


class TierLevel(IntEnum):
    """Tier levels with explicit values; comparisons use the value only."""

    BRONZE = 1
    SILVER = 2
    GOLD = 3
    PLATINUM = 4

    @property
    def label(self) -> str:
        # Looked up, not ``name.lower()``: the enum's ``name`` descriptor costs
        # microseconds per access, which adds up over a tier run's promotions.
        return _LABELS[self._value_]

    @classmethod
    def from_name(cls, name: str) -> TierLevel:
        try:
            return cls[name.upper()]
        except KeyError:
            allowed = ", ".join(level.label for level in cls)
            raise ValueError(f"unknown tier level {name!r}; allowed: {allowed}") from None

    def next(self) -> TierLevel | None:
        return TierLevel(self.value + 1) if self.value < max(TierLevel).value else None


_LABELS = {level._value_: level._name_.lower() for level in TierLevel}


class RecognitionTier(FrozenModel):
    """What a mentor must reach inside an award period to hold ``level``."""

    organisation_id: UUID
    level: TierLevel
    min_assignments: int = Field(ge=0, le=1_000_000)
    min_streak: int = Field(ge=0, le=1000)
    activity_types: tuple[str, ...] = ()

    def eligibility(
        self, assignments: int, streak: int, next_tier: RecognitionTier | None = None
    ) -> TierEligibility:
        """Eligibility for this tier, with progress towards ``next_tier``.

        Progress is the lesser of the two fractions (assignments, streak) of the
        next tier's thresholds, because both must hold; with no next tier a
        mentor who holds this tier is at 1.0.
        """
        assignments_met = assignments >= self.min_assignments
        streak_met = streak >= self.min_streak
        target = next_tier or self
        progress = min(
            _fraction(assignments, target.min_assignments), _fraction(streak, target.min_streak)
        )
        return TierEligibility(
            tier=self.level,
            assignments_met=assignments_met,
            streak_met=streak_met,
            progress_to_next_tier=progress,
        )


def _fraction(value: int, target: int) -> float:
    return 1.0 if target <= 0 else value / target


class TierEligibility(FrozenModel):
    tier: TierLevel
    assignments_met: bool
    streak_met: bool
    progress_to_next_tier: float

    @model_validator(mode="before")
    @classmethod
    def _normalise(cls, data: object) -> object:
        if not isinstance(data, dict):
            return data
        data = dict(data)
        if "progress_to_next_tier" in data:
            value = float(data["progress_to_next_tier"])
            data["progress_to_next_tier"] = min(1.0, max(0.0, value))
        # overall_eligible is derived; accept it on input (JSON round-trip) but
        # never let it contradict the two conditions.
        data.pop("overall_eligible", None)
        return data

    @computed_field  # type: ignore[prop-decorator]
    @property
    def overall_eligible(self) -> bool:
        return self.assignments_met and self.streak_met


class TierAwardPeriod(FrozenModel):
    id: UUID
    organisation_id: UUID
    name: str = Field(min_length=1, max_length=200)
    start_date: date
    end_date: date
    is_active: bool = True

    @model_validator(mode="after")
    def _end_not_before_start(self) -> Self:
        if self.end_date < self.start_date:
            raise ValueError(f"end_date {self.end_date} is before start_date {self.start_date}")
        return self

    def contains(self, day: date) -> bool:
        return self.start_date <= day <= self.end_date

    def is_currently_active(self, clock: Clock, tz: tzinfo) -> bool:
        return self.is_active and self.contains(local_today(clock, tz))


class TierAssignment(FrozenModel):
    id: UUID
    peer_mentor_id: UUID
    organisation_id: UUID
    award_period_id: UUID
    tier: TierLevel
    assigned_at: datetime


def highest_eligible_tier(
    tiers: list[RecognitionTier], assignments: int, streak: int
) -> TierLevel | None:
    """The highest tier whose *both* thresholds hold (tiers need not be nested)."""
    eligible = [
        t.level for t in tiers if assignments >= t.min_assignments and streak >= t.min_streak
    ]
    return max(eligible, default=None)


@dataclass(frozen=True)
class Promotion:
    """A tier assignment that just reached a higher ``tier`` (the mentor is told)."""

    assignment_id: UUID
    peer_mentor_id: UUID
    organisation_id: UUID
    award_period_id: UUID
    award_period_name: str
    tier: TierLevel
    assigned_at: datetime
