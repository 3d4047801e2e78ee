from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from worker.core.validation import describe_validation_error
from worker.model.criteria import (
    AllOfCriterion,
    MentorStats,
    RawCriterion,
    contains_raw,
    evaluate,
    parse_criteria,
    progress,
    streak_keys,
)
from worker.model.streaks import Period
from worker.model.tiers import TierLevel

WEEK_ALL = (Period.WEEK, frozenset[str]())


def stats(**counts: int) -> MentorStats:
    return MentorStats(counts=counts)


def errors(data: Any) -> list[str]:
    with pytest.raises(ValidationError) as info:
        parse_criteria(data)
    return describe_validation_error(info.value, prefix="criteria")


def test_threshold_counts_listed_types_or_all() -> None:
    only_sessions = parse_criteria(
        {"type": "threshold", "version": 1, "activity_types": ["peer_session"], "min_count": 3}
    )
    any_type = parse_criteria({"type": "threshold", "version": 1, "min_count": 3})
    assert not evaluate(only_sessions, stats(peer_session=2, phone_call=5))
    assert evaluate(only_sessions, stats(peer_session=3))
    assert evaluate(any_type, stats(peer_session=1, phone_call=2))


def test_streak_uses_the_loaded_streak_for_its_key() -> None:
    c = parse_criteria({"type": "streak", "version": 1, "period": "week", "min_length": 4})
    assert streak_keys(c) == {WEEK_ALL}
    assert evaluate(c, MentorStats(streaks={WEEK_ALL: 4}))
    assert not evaluate(c, MentorStats(streaks={WEEK_ALL: 3}))
    with pytest.raises(KeyError, match="not loaded"):
        evaluate(c, MentorStats())


def test_training_completion_needs_every_course() -> None:
    c = parse_criteria({"type": "training_completion", "version": 1, "course_ids": ["a", "b"]})
    assert not evaluate(c, MentorStats(completed_courses=frozenset({"a"})))
    assert evaluate(c, MentorStats(completed_courses=frozenset({"a", "b", "c"})))


def test_tier_criterion_accepts_names_and_compares_by_value() -> None:
    c = parse_criteria({"type": "tier", "version": 1, "min_tier": "silver"})
    assert not evaluate(c, MentorStats(highest_tier=None))
    assert not evaluate(c, MentorStats(highest_tier=TierLevel.BRONZE))
    assert evaluate(c, MentorStats(highest_tier=TierLevel.PLATINUM))


def test_all_of_and_any_of() -> None:
    both = {
        "type": "all_of",
        "version": 1,
        "criteria": [
            {"type": "threshold", "version": 1, "min_count": 2},
            {"type": "training_completion", "version": 1, "course_ids": ["x"]},
        ],
    }
    either = {**both, "type": "any_of"}
    s = MentorStats(counts={"a": 5})
    assert not evaluate(parse_criteria(both), s)
    assert evaluate(parse_criteria(either), s)


def test_raw_is_stored_but_never_holds() -> None:
    c = parse_criteria({"type": "raw", "version": 1, "raw": {"sql": "anything"}})
    assert isinstance(c, RawCriterion)
    assert contains_raw(c)
    assert evaluate(c, stats(a=10**6)) is False
    assert progress(c, stats()) is None


def test_progress_reports_current_of_target() -> None:
    c = parse_criteria({"type": "threshold", "version": 1, "min_count": 10})
    p = progress(c, stats(peer_session=7))
    assert p is not None and (p.current, p.target, p.fraction) == (7, 10, 0.7)
    combo = parse_criteria(
        {
            "type": "all_of",
            "version": 1,
            "criteria": [
                {"type": "threshold", "version": 1, "min_count": 10},
                {"type": "streak", "version": 1, "period": "week", "min_length": 4},
            ],
        }
    )
    p = progress(combo, MentorStats(counts={"x": 9}, streaks={WEEK_ALL: 1}))
    assert p is not None and (p.current, p.target, p.unit) == (1, 4, "weeks")


def test_unknown_type_names_the_allowed_types() -> None:
    [message] = errors({"type": "magic", "version": 1})
    assert message.startswith("criteria: ")
    for allowed in (
        "threshold",
        "streak",
        "training_completion",
        "tier",
        "all_of",
        "any_of",
        "raw",
    ):
        assert allowed in message


def test_unknown_version_names_the_field_and_allowed_value() -> None:
    assert errors({"type": "threshold", "version": 2, "min_count": 1}) == [
        "criteria.version: Input should be 1"
    ]


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ({"type": "threshold", "version": 1, "min_count": -1}, "criteria.min_count"),
        ({"type": "threshold", "version": 1, "min_count": 1_000_001}, "criteria.min_count"),
        ({"type": "streak", "version": 1, "period": "day", "min_length": 2}, "criteria.period"),
        ({"type": "tier", "version": 1, "min_tier": "diamond"}, "criteria.min_tier"),
        ({"type": "threshold", "version": 1, "min_count": 1, "colour": "red"}, "criteria.colour"),
        (
            {"type": "threshold", "version": 1, "activity_types": ["Peer Session"], "min_count": 1},
            "criteria.activity_types[0]",
        ),
    ],
)
def test_invalid_fields_are_named(data: dict[str, Any], field: str) -> None:
    assert any(line.startswith(f"{field}: ") for line in errors(data)), errors(data)


def _nested(depth: int) -> dict[str, Any]:
    node: dict[str, Any] = {"type": "threshold", "version": 1, "min_count": 1}
    for _ in range(depth):
        node = {"type": "all_of", "version": 1, "criteria": [node]}
    return node


def test_nesting_is_limited_to_three() -> None:
    assert isinstance(parse_criteria(_nested(3)), AllOfCriterion)
    assert any("nested at most 3 deep" in line for line in errors(_nested(4)))


def test_criteria_round_trip_through_json() -> None:
    c = parse_criteria(_nested(2))
    assert parse_criteria(c.model_dump(mode="json")) == c
