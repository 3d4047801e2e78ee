"""Sample data for ``badges demo``: one organisation, its badges and tiers, a year of activity.

Pure: builds plain dicts and lists from a seed, so the demo's outcome can be
checked against a recomputation (:func:`expected_awards`).
"""

from __future__ import annotations

import random
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any
from uuid import UUID, uuid5

from worker.model.criteria import MentorStats, StreakKey, evaluate, parse_criteria, streak_keys
from worker.model.streaks import Period, longest_streak

ACTIVITY_TYPES = ("peer_session", "phone_call", "group_meeting", "assignment_completed")
COURSES = ("basic-course", "advanced-course")


def sample_configuration(org: UUID, year: int) -> dict[str, Any]:
    """Badge definitions, tiers and an award period as ``badges definitions apply`` reads them."""

    def badge(code: str, name: str, criteria: dict[str, Any], **extra: Any) -> dict[str, Any]:
        return {
            "organisation_id": str(org),
            "code": code,
            "name": name,
            "criteria": criteria,
            **extra,
        }

    return {
        "organisations": [{"id": str(org), "name": "Demo-foreningen", "language": "nb"}],
        "badges": [
            badge(
                "first-activity",
                "Første aktivitet",
                {"type": "threshold", "version": 1, "min_count": 1},
            ),
            badge(
                "ten-sessions",
                "10 likepersonssamtaler",
                {
                    "type": "threshold",
                    "version": 1,
                    "activity_types": ["peer_session"],
                    "min_count": 10,
                },
            ),
            badge(
                "phone-friend",
                "Telefonvenn",
                {
                    "type": "threshold",
                    "version": 1,
                    "activity_types": ["phone_call"],
                    "min_count": 8,
                },
                revocable=True,
            ),
            badge(
                "steady-month",
                "Fire uker på rad",
                {"type": "streak", "version": 1, "period": "week", "min_length": 4},
            ),
            badge(
                "quarter-streak",
                "Tre måneder på rad",
                {"type": "streak", "version": 1, "period": "month", "min_length": 3},
            ),
            badge(
                "trained",
                "Grunnkurs fullført",
                {"type": "training_completion", "version": 1, "course_ids": ["basic-course"]},
            ),
            badge(
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
            ),
        ],
        "tiers": [
            {"organisation_id": str(org), "level": "bronze", "min_assignments": 5, "min_streak": 1},
            {
                "organisation_id": str(org),
                "level": "silver",
                "min_assignments": 15,
                "min_streak": 3,
            },
            {"organisation_id": str(org), "level": "gold", "min_assignments": 30, "min_streak": 6},
            {
                "organisation_id": str(org),
                "level": "platinum",
                "min_assignments": 60,
                "min_streak": 10,
            },
        ],
        "award_periods": [
            {
                "organisation_id": str(org),
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


def generate(org: UUID, *, mentors: int = 36, year: int, seed: int = 7) -> DemoData:
    """A year of realistic activity: most mentors weekly-ish, some sporadic.

    Includes re-sent (duplicate) events, a few updates that move an activity
    to another date or type, a few deletions, and a few malformed events.
    """
    rng = random.Random(seed)
    ids = _Ids(org)
    mentor_ids = [ids("mentor") for _ in range(mentors)]
    events: list[dict[str, Any]] = []
    live: dict[UUID, dict[str, Any]] = {}
    start = date(year, 1, 1)
    clock = datetime(year, 1, 1, 8, tzinfo=UTC)
    for index, mentor in enumerate(mentor_ids):
        keenness = rng.choice((0.9, 0.7, 0.5, 0.25))
        weeks = rng.randint(10, 52)
        for week in range(weeks):
            if rng.random() > keenness:
                continue
            for _ in range(rng.choice((1, 1, 2, 3))):
                day = start + timedelta(days=7 * week + rng.randint(0, 6))
                kind = rng.choices(ACTIVITY_TYPES, weights=(5, 3, 2, 1))[0]
                activity = {
                    "id": str(ids("activity")),
                    "organisation_id": str(org),
                    "peer_mentor_id": str(mentor),
                    "activity_type": kind,
                    "activity_date": day.isoformat(),
                    "course_id": None,
                }
                clock += timedelta(minutes=rng.randint(1, 90))
                events.append(_event(ids, "activity.saved", clock, activity))
                live[UUID(activity["id"])] = activity
        if index % 3 == 0:
            course = COURSES[0] if index % 2 == 0 else COURSES[1]
            activity = {
                "id": str(ids("activity")),
                "organisation_id": str(org),
                "peer_mentor_id": str(mentor),
                "activity_type": "training_completed",
                "activity_date": (start + timedelta(days=rng.randint(0, 200))).isoformat(),
                "course_id": course,
            }
            clock += timedelta(minutes=5)
            events.append(_event(ids, "activity.saved", clock, activity))
            live[UUID(activity["id"])] = activity

    # Updates: move a few activities to another date or type (a later occurred_at wins).
    saved = [e for e in events if e["event_type"] == "activity.saved"]
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
        clock += timedelta(minutes=3)
        events.append(_event(ids, "activity.saved", clock, activity))
        live[UUID(activity["id"])] = activity
    # Deletions: a few activities are removed again.
    for event in rng.sample(saved, k=min(6, len(saved))):
        activity = event["activity"]
        clock += timedelta(minutes=3)
        events.append(
            _event(
                ids,
                "activity.deleted",
                clock,
                {k: activity[k] for k in ("id", "organisation_id", "peer_mentor_id")},
            )
        )
        live.pop(UUID(activity["id"]), None)
    # Re-sent messages: the queue delivers some events twice.
    duplicates = [dict(e) for e in rng.sample(events, k=max(1, len(events) // 20))]
    for duplicate in duplicates:
        events.insert(rng.randint(0, len(events)), duplicate)
    # Malformed events: quarantined, never retried.
    invalid = [
        {"event_type": "activity.saved", "schema_version": 1},
        {
            **_event(
                ids, "activity.saved", clock, {**saved[0]["activity"], "activity_type": "Bad Type"}
            )
        },
        {**_event(ids, "activity.saved", clock, saved[1]["activity"]), "schema_version": 99},
    ]
    for bad in invalid:
        events.insert(rng.randint(0, len(events)), bad)
    return DemoData(org, mentor_ids, events, len(invalid), len(duplicates), live)


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
