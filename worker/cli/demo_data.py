"""Sample data for ``badges demo``: one organisation, its badges and tiers, a year of activity.

Pure: builds plain dicts and lists from a seed, so the demo's outcome can be
checked against a recomputation (:func:`expected_awards`).
"""

from __future__ import annotations

import random
from collections import defaultdict
from copy import deepcopy
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any
from uuid import UUID, uuid5

from worker.model.criteria import MentorStats, StreakKey, evaluate, parse_criteria, streak_keys
from worker.model.streaks import Period, longest_streak

ACTIVITY_TYPES = ("peer_session", "phone_call", "group_meeting", "assignment_completed")
COURSES = ("basic-course", "advanced-course")


#: The demo's badges: code, name, criteria, and extra definition fields.
_BADGES: tuple[tuple[str, str, dict[str, Any], dict[str, Any]], ...] = (
    ("first-activity", "Første aktivitet", {"type": "threshold", "version": 1, "min_count": 1}, {}),
    (
        "ten-sessions",
        "10 likepersonssamtaler",
        {"type": "threshold", "version": 1, "activity_types": ["peer_session"], "min_count": 10},
        {},
    ),
    (
        "phone-friend",
        "Telefonvenn",
        {"type": "threshold", "version": 1, "activity_types": ["phone_call"], "min_count": 8},
        {"revocable": True},
    ),
    (
        "steady-month",
        "Fire uker på rad",
        {"type": "streak", "version": 1, "period": "week", "min_length": 4},
        {},
    ),
    (
        "quarter-streak",
        "Tre måneder på rad",
        {"type": "streak", "version": 1, "period": "month", "min_length": 3},
        {},
    ),
    (
        "trained",
        "Grunnkurs fullført",
        {"type": "training_completion", "version": 1, "course_ids": ["basic-course"]},
        {},
    ),
    (
        "all-rounder",
        "Allsidig likeperson",
        {
            "type": "all_of",
            "version": 1,
            "criteria": [
                {"type": "threshold", "version": 1, "min_count": 40},
                {"type": "streak", "version": 1, "period": "week", "min_length": 6},
            ],
        },
        {},
    ),
)
#: The demo's tiers: level, minimum assignments, minimum streak.
_TIERS = (("bronze", 5, 1), ("silver", 15, 3), ("gold", 30, 6), ("platinum", 60, 10))


def sample_configuration(org: UUID, year: int) -> dict[str, Any]:
    """Badge definitions, tiers and an award period as ``badges definitions apply`` reads them."""
    owner = {"organisation_id": str(org)}
    return {
        "organisations": [{"id": str(org), "name": "Demo-foreningen", "language": "nb"}],
        "badges": [
            {**owner, "code": code, "name": name, "criteria": deepcopy(criteria), **extra}
            for code, name, criteria, extra in _BADGES
        ],
        "tiers": [
            {**owner, "level": level, "min_assignments": assignments, "min_streak": streak}
            for level, assignments, streak in _TIERS
        ],
        "award_periods": [
            {
                **owner,
                "name": str(year),
                "start_date": date(year, 1, 1).isoformat(),
                "end_date": date(year, 12, 31).isoformat(),
                "is_active": True,
            }
        ],
    }


@dataclass
class DemoData:
    organisation_id: UUID
    mentors: list[UUID]
    events: list[dict[str, Any]]  # in publish order, duplicates included
    invalid_events: int
    duplicate_messages: int
    final_activities: dict[UUID, dict[str, Any]] = field(default_factory=dict)  # live ones


class _Ids:
    """Ids unique to one demo organisation, reproducible from its id and the seed."""

    def __init__(self, org: UUID) -> None:
        self.org = org
        self.counter = 0

    def __call__(self, kind: str) -> UUID:
        self.counter += 1
        return uuid5(self.org, f"{kind}-{self.counter}")


def _event(
    ids: _Ids, event_type: str, occurred_at: datetime, activity: dict[str, Any]
) -> dict[str, Any]:
    return {
        "event_id": str(ids("event")),
        "event_type": event_type,
        "schema_version": 1,
        "occurred_at": occurred_at.isoformat(),
        "activity": activity,
    }


@dataclass
class _Feed:
    """The events generated so far, in publish order, and the activities they leave live."""

    ids: _Ids
    clock: datetime
    events: list[dict[str, Any]] = field(default_factory=list)
    live: dict[UUID, dict[str, Any]] = field(default_factory=dict)

    def save(self, activity: dict[str, Any], *, after: timedelta) -> None:
        self.clock += after
        self.events.append(_event(self.ids, "activity.saved", self.clock, activity))
        self.live[UUID(activity["id"])] = activity

    def delete(self, activity: dict[str, Any], *, after: timedelta) -> None:
        self.clock += after
        key = {k: activity[k] for k in ("id", "organisation_id", "peer_mentor_id")}
        self.events.append(_event(self.ids, "activity.deleted", self.clock, key))
        self.live.pop(UUID(activity["id"]), None)


def _activity(
    feed: _Feed, org: UUID, mentor: UUID, kind: str, day: date, course: str | None = None
) -> dict[str, Any]:
    return {
        "id": str(feed.ids("activity")),
        "organisation_id": str(org),
        "peer_mentor_id": str(mentor),
        "activity_type": kind,
        "activity_date": day.isoformat(),
        "course_id": course,
    }


def _mentor_year(
    feed: _Feed, rng: random.Random, org: UUID, mentor: UUID, index: int, start: date
) -> None:
    """One mentor's activities: some weeks of the year, one to three a week; some training."""
    keenness = rng.choice((0.9, 0.7, 0.5, 0.25))
    weeks = rng.randint(10, 52)
    for week in range(weeks):
        if rng.random() > keenness:
            continue
        for _ in range(rng.choice((1, 1, 2, 3))):
            day = start + timedelta(days=7 * week + rng.randint(0, 6))
            kind = rng.choices(ACTIVITY_TYPES, weights=(5, 3, 2, 1))[0]
            activity = _activity(feed, org, mentor, kind, day)
            feed.save(activity, after=timedelta(minutes=rng.randint(1, 90)))
    if index % 3 == 0:
        course = COURSES[0] if index % 2 == 0 else COURSES[1]
        day = start + timedelta(days=rng.randint(0, 200))
        feed.save(
            _activity(feed, org, mentor, "training_completed", day, course),
            after=timedelta(minutes=5),
        )


def _update_some(feed: _Feed, rng: random.Random, saved: list[dict[str, Any]]) -> None:
    """Move a few activities to another date or type (a later occurred_at wins)."""
    for event in rng.sample(saved, k=min(12, len(saved))):
        activity = dict(event["activity"])
        if activity["activity_type"] == "training_completed":
            continue
        if rng.random() < 0.5:
            activity["activity_date"] = (
                date.fromisoformat(str(activity["activity_date"]))
                + timedelta(days=rng.choice((-8, 9)))
            ).isoformat()
        else:
            activity["activity_type"] = rng.choice(ACTIVITY_TYPES)
        feed.save(activity, after=timedelta(minutes=3))


def _malformed(feed: _Feed, saved: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Events the worker quarantines and never retries."""
    bad_type = {**saved[0]["activity"], "activity_type": "Bad Type"}
    return [
        {"event_type": "activity.saved", "schema_version": 1},
        _event(feed.ids, "activity.saved", feed.clock, bad_type),
        {
            **_event(feed.ids, "activity.saved", feed.clock, saved[1]["activity"]),
            "schema_version": 99,
        },
    ]


def generate(org: UUID, *, mentors: int = 36, year: int, seed: int = 7) -> DemoData:
    """A year of realistic activity: most mentors weekly-ish, some sporadic.

    Includes re-sent (duplicate) events, a few updates that move an activity
    to another date or type, a few deletions, and a few malformed events.
    """
    rng = random.Random(seed)
    ids = _Ids(org)
    mentor_ids = [ids("mentor") for _ in range(mentors)]
    feed = _Feed(ids, clock=datetime(year, 1, 1, 8, tzinfo=UTC))
    for index, mentor in enumerate(mentor_ids):
        _mentor_year(feed, rng, org, mentor, index, date(year, 1, 1))
    saved = [e for e in feed.events if e["event_type"] == "activity.saved"]
    _update_some(feed, rng, saved)
    # Deletions: a few activities are removed again.
    for event in rng.sample(saved, k=min(6, len(saved))):
        feed.delete(event["activity"], after=timedelta(minutes=3))
    events = feed.events
    # Re-sent messages: the queue delivers some events twice.
    duplicates = [dict(e) for e in rng.sample(events, k=max(1, len(events) // 20))]
    for duplicate in duplicates:
        events.insert(rng.randint(0, len(events)), duplicate)
    invalid = _malformed(feed, saved)
    for bad in invalid:
        events.insert(rng.randint(0, len(events)), bad)
    return DemoData(org, mentor_ids, events, len(invalid), len(duplicates), feed.live)


def stats_of(activities: list[dict[str, Any]], keys: set[StreakKey]) -> MentorStats:
    """A snapshot computed directly from a list of live activities (the oracle)."""
    counts: dict[str, int] = defaultdict(int)
    courses = set()
    for a in activities:
        counts[a["activity_type"]] += 1
        if a["activity_type"] == "training_completed":
            courses.add(a["course_id"])
    streaks = {
        (period, types): longest_streak(
            [
                date.fromisoformat(a["activity_date"])
                for a in activities
                if not types or a["activity_type"] in types
            ],
            Period(period),
        )
        for period, types in keys
    }
    return MentorStats(counts=dict(counts), streaks=streaks, completed_courses=frozenset(courses))


def expected_awards(data: DemoData, config: dict[str, Any]) -> dict[UUID, set[str]]:
    """Badge codes each mentor should hold, recomputed from the final live activities.

    Non-revocable badges that were earned and later lost their basis are not
    modelled here; the demo's revocable badge is the only one that may drop.
    """
    by_mentor: dict[UUID, list[dict[str, Any]]] = defaultdict(list)
    for activity in data.final_activities.values():
        by_mentor[UUID(activity["peer_mentor_id"])].append(activity)
    definitions = [(b["code"], parse_criteria(b["criteria"])) for b in config["badges"]]
    keys: set[StreakKey] = set()
    for _, criteria in definitions:
        keys |= streak_keys(criteria)
    result = {}
    for mentor in data.mentors:
        stats = stats_of(by_mentor.get(mentor, []), keys)
        result[mentor] = {code for code, criteria in definitions if evaluate(criteria, stats)}
    return result
