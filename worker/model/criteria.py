"""Badge criteria, version 1: a closed, versioned set with pure evaluation.

Criteria are stored as JSON on the badge definition.  Parsing goes through
:data:`CRITERIA_ADAPTER`; an unknown ``type`` or ``version`` is a validation
error that names the allowed ones.  ``raw`` criteria are accepted (with a
warning) but never evaluated automatically: they are awarded only manually.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal, Self

from pydantic import Field, TypeAdapter, field_validator, model_validator

from worker.core.models import FrozenModel
from worker.model.events import ActivityType, CourseId
from worker.model.streaks import Period
from worker.model.tiers import TierLevel

#: all_of/any_of may nest at most this deep (the outermost counts as 1).
MAX_NESTING = 3
CRITERIA_TYPES = ("threshold", "streak", "training_completion", "tier", "all_of", "any_of", "raw")
RAW_WARNING = (
    "raw criteria are stored but never evaluated automatically; "
    "award this badge with a manual award"
)


class _Criterion(FrozenModel):
    version: Literal[1]


class ThresholdCriterion(_Criterion):
    type: Literal["threshold"]
    activity_types: tuple[ActivityType, ...] = ()
    min_count: int = Field(ge=1, le=1_000_000)


class StreakCriterion(_Criterion):
    type: Literal["streak"]
    period: Period
    activity_types: tuple[ActivityType, ...] = ()
    min_length: int = Field(ge=1, le=1000)


class TrainingCompletionCriterion(_Criterion):
    type: Literal["training_completion"]
    course_ids: tuple[CourseId, ...] = Field(min_length=1)


class TierCriterion(_Criterion):
    type: Literal["tier"]
    min_tier: TierLevel

    @field_validator("min_tier", mode="before")
    @classmethod
    def _tier_by_name(cls, value: object) -> object:
        return TierLevel.from_name(value) if isinstance(value, str) else value


class RawCriterion(_Criterion):
    type: Literal["raw"]
    raw: Any = None


class _Composite(_Criterion):
    criteria: tuple[Criteria, ...] = Field(min_length=1)

    @model_validator(mode="after")
    def _depth(self) -> Self:
        _check_depth(self)
        return self


class AllOfCriterion(_Composite):
    type: Literal["all_of"]


class AnyOfCriterion(_Composite):
    type: Literal["any_of"]


Criteria = Annotated[
    ThresholdCriterion
    | StreakCriterion
    | TrainingCompletionCriterion
    | TierCriterion
    | AllOfCriterion
    | AnyOfCriterion
    | RawCriterion,
    Field(discriminator="type"),
]
_Composite.model_rebuild()
AllOfCriterion.model_rebuild()
AnyOfCriterion.model_rebuild()
CRITERIA_ADAPTER: TypeAdapter[Criteria] = TypeAdapter(Criteria)


def _nesting(criteria: Criteria | _Composite) -> int:
    if isinstance(criteria, _Composite):
        return 1 + max(_nesting(c) for c in criteria.criteria)
    return 0


def _check_depth(criteria: _Composite) -> None:
    if _nesting(criteria) > MAX_NESTING:
        raise ValueError(f"all_of/any_of may be nested at most {MAX_NESTING} deep")


def parse_criteria(data: Any) -> Criteria:
    """Parse stored or configured criteria JSON (raises pydantic ValidationError)."""
    return CRITERIA_ADAPTER.validate_python(data)


def walk(criteria: Criteria) -> Iterator[Criteria]:
    """Every criterion in the tree, depth first, the root included."""
    yield criteria
    if isinstance(criteria, AllOfCriterion | AnyOfCriterion):
        for child in criteria.criteria:
            yield from walk(child)


def contains_raw(criteria: Criteria) -> bool:
    return any(isinstance(c, RawCriterion) for c in walk(criteria))


def uses_tier(criteria: Criteria) -> bool:
    return any(isinstance(c, TierCriterion) for c in walk(criteria))


StreakKey = tuple[Period, frozenset[str]]


def streak_key(criterion: StreakCriterion) -> StreakKey:
    return criterion.period, frozenset(criterion.activity_types)


def streak_keys(criteria: Criteria) -> set[StreakKey]:
    """The (period, activity types) streaks evaluation of ``criteria`` needs."""
    return {streak_key(c) for c in walk(criteria) if isinstance(c, StreakCriterion)}


@dataclass(frozen=True)
class MentorStats:
    """A snapshot of one mentor's statistics, as evaluation needs them.

    ``streaks`` holds the longest streak for each :data:`StreakKey` the
    criteria being evaluated ask for (see :func:`streak_keys`); an empty
    activity-type set means all types.
    """

    counts: Mapping[str, int] = field(default_factory=dict)
    streaks: Mapping[StreakKey, int] = field(default_factory=dict)
    completed_courses: frozenset[str] = frozenset()
    highest_tier: TierLevel | None = None

    def count(self, activity_types: tuple[str, ...] | frozenset[str]) -> int:
        if not activity_types:
            return sum(self.counts.values())
        return sum(self.counts.get(t, 0) for t in set(activity_types))

    def streak(self, key: StreakKey) -> int:
        try:
            return self.streaks[key]
        except KeyError:
            raise KeyError(f"streak {key} was not loaded into the snapshot") from None


@dataclass(frozen=True)
class Progress:
    """How far a mentor is towards one criterion: ``current`` of ``target``."""

    current: int
    target: int
    unit: str

    @property
    def fraction(self) -> float:
        return 1.0 if self.target <= 0 else min(1.0, self.current / self.target)


def evaluate(criteria: Criteria, stats: MentorStats) -> bool:
    """Whether ``stats`` satisfy ``criteria``.  ``raw`` never holds automatically."""
    match criteria:
        case ThresholdCriterion():
            return stats.count(criteria.activity_types) >= criteria.min_count
        case StreakCriterion():
            return stats.streak(streak_key(criteria)) >= criteria.min_length
        case TrainingCompletionCriterion():
            return set(criteria.course_ids) <= stats.completed_courses
        case TierCriterion():
            return stats.highest_tier is not None and stats.highest_tier >= criteria.min_tier
        case AllOfCriterion():
            return all(evaluate(c, stats) for c in criteria.criteria)
        case AnyOfCriterion():
            return any(evaluate(c, stats) for c in criteria.criteria)
        case RawCriterion():
            return False
    raise TypeError(f"unknown criteria {criteria!r}")  # pragma: no cover


def progress(criteria: Criteria, stats: MentorStats) -> Progress | None:
    """Progress towards ``criteria`` for display (e.g. 7/10 sessions).

    Composite criteria report their least advanced part (all_of) or their most
    advanced part (any_of); ``raw`` has no measurable progress.
    """
    match criteria:
        case ThresholdCriterion():
            return Progress(stats.count(criteria.activity_types), criteria.min_count, "activities")
        case StreakCriterion():
            unit = "weeks" if criteria.period is Period.WEEK else "months"
            return Progress(stats.streak(streak_key(criteria)), criteria.min_length, unit)
        case TrainingCompletionCriterion():
            done = len(set(criteria.course_ids) & stats.completed_courses)
            return Progress(done, len(set(criteria.course_ids)), "courses")
        case TierCriterion():
            held = int(stats.highest_tier or 0)
            return Progress(min(held, int(criteria.min_tier)), int(criteria.min_tier), "tier level")
        case AllOfCriterion() | AnyOfCriterion():
            parts = [p for c in criteria.criteria if (p := progress(c, stats)) is not None]
            if not parts:
                return None
            pick = min if isinstance(criteria, AllOfCriterion) else max
            return pick(parts, key=lambda p: p.fraction)
        case RawCriterion():
            return None
    raise TypeError(f"unknown criteria {criteria!r}")  # pragma: no cover
