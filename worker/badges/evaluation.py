"""Evaluate badge definitions for a set of mentors, award and revoke (SQL + pure criteria)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Collection
from dataclasses import dataclass, field
from datetime import datetime
from uuid import UUID

from sqlalchemy import Connection

from worker.badges.awards import (
    AwardSource,
    BadgeDefinition,
    EarnedBadge,
    earned_definition_ids,
    enabled_definitions,
    insert_awards,
    revocable_earned,
    revoke,
)
from worker.model.criteria import MentorStats, StreakKey, contains_raw, evaluate, streak_keys
from worker.stats.counts import load_snapshots

EVALUATION_ACTOR = "evaluation"
REVOKE_REASON = "criteria no longer met"


@dataclass
class EvaluationResult:
    awarded: list[EarnedBadge] = field(default_factory=list)
    revoked: list[EarnedBadge] = field(default_factory=list)
    #: Awards the unique constraint caught although the locked check said "not earned".
    conflicts: int = 0


def _needed_streaks(definitions: Collection[BadgeDefinition]) -> set[StreakKey]:
    keys: set[StreakKey] = set()
    for d in definitions:
        keys |= streak_keys(d.criteria)
    return keys


def evaluate_mentors(
    conn: Connection,
    mentor_orgs: dict[UUID, UUID],
    *,
    now: datetime,
    source: AwardSource = "evaluation",
    recheck_revocable: Collection[UUID] = (),
    only: Collection[UUID] | None = None,
) -> EvaluationResult:
    """Award every enabled, automatic definition the mentors now meet.

    ``mentor_orgs`` maps mentor id to organisation id.  Mentors in
    ``recheck_revocable`` (some count of theirs went down) also have their
    revocable badges re-checked and revoked, with an audit row, when the
    criteria no longer hold.  ``only`` limits the evaluation to those
    definition ids (the tier run evaluates only definitions a promotion can
    newly satisfy).
    """
    result = EvaluationResult()
    if not mentor_orgs:
        return result
    definitions = [
        d
        for d in enabled_definitions(conn, set(mentor_orgs.values()))
        if not contains_raw(d.criteria) and (only is None or d.id in only)
    ]
    by_org: dict[UUID, list[BadgeDefinition]] = defaultdict(list)
    for d in definitions:
        by_org[d.organisation_id].append(d)
    if not definitions:
        return result
    held = earned_definition_ids(conn, mentor_orgs.keys())
    # Streaks are the costly part of a snapshot: load only those that a
    # definition still to be earned (or a revocable one to re-check) needs.
    relevant = [
        d
        for d in definitions
        if any((d.id, m) not in held for m, org in mentor_orgs.items() if org == d.organisation_id)
        or (d.revocable and recheck_revocable)
    ]
    snapshots = load_snapshots(conn, mentor_orgs.keys(), _needed_streaks(relevant))
    to_award = [
        (d, mentor)
        for mentor, org in sorted(mentor_orgs.items(), key=lambda item: str(item[0]))
        for d in by_org.get(org, [])
        if (d.id, mentor) not in held and evaluate(d.criteria, snapshots[mentor])
    ]
    result.awarded = insert_awards(conn, to_award, now, source)
    result.conflicts = len(to_award) - len(result.awarded)
    if recheck_revocable:
        result.revoked = _revoke_unmet(
            conn, {d.id: d for d in definitions}, snapshots, set(recheck_revocable), now
        )
    return result


def _revoke_unmet(
    conn: Connection,
    definitions: dict[UUID, BadgeDefinition],
    snapshots: dict[UUID, MentorStats],
    mentors: set[UUID],
    now: datetime,
) -> list[EarnedBadge]:
    revoked = []
    for earned in revocable_earned(conn, mentors):
        definition = definitions.get(earned.badge_definition_id)
        if definition is None or earned.peer_mentor_id not in snapshots:
            continue  # disabled or raw: never revoked automatically
        if not evaluate(definition.criteria, snapshots[earned.peer_mentor_id]) and revoke(
            conn, earned, reason=REVOKE_REASON, actor=EVALUATION_ACTOR, now=now
        ):
            revoked.append(earned)
    return revoked
