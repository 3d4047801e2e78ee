"""Backfill awards for a known set of mentors, decided set-based in SQL.

Where many mentors' history arrives at once (the history import), each
enabled, automatically evaluated definition is decided for a whole group of
mentors in one ``INSERT … SELECT``: :mod:`worker.badges.criteria_sql`
compiles its criteria into a predicate over the incremental stats tables,
limited to the group, and the database inserts the awards of every mentor
of the group who meets it and does not hold it yet.  The awards are the
same as :func:`worker.badges.evaluation.evaluate_mentors` decides from
snapshots loaded into Python (a property test compares the two), without
moving the group's stats out of the database.

Definitions whose criteria contain ``raw`` anywhere are skipped, as
everywhere in automatic evaluation.  Awards are ``backfill`` awards
(``earned_at`` now); writing their notifications and audit rows is the
caller's (the history import writes in-app notifications, and skipped push
rows while the push channel is enabled; a retroactive evaluation also
audits).  Nothing is revoked here.

A mentor's stats rows and their ``mentors`` row carry their one
organisation; each definition is decided for the mentors of its
organisation only.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any
from uuid import UUID

from sqlalchemy import Connection, exists, literal, select

from schema.tables import earned_badges, mentors
from worker.badges.awards import (
    BadgeDefinition,
    EarnedBadge,
    enabled_definitions,
    insert_awards_from,
)
from worker.badges.criteria_sql import Bounds, meets
from worker.db.sql import in_values, new_uuid
from worker.model.criteria import contains_raw


def held(definition: BadgeDefinition, mentor: Any) -> Any:
    """The mentor in column ``mentor`` already holds ``definition``."""
    e = earned_badges.c
    return exists().where(e.badge_definition_id == definition.id, e.peer_mentor_id == mentor)


def award_qualifying(
    conn: Connection,
    d: BadgeDefinition,
    candidates: Sequence[UUID],
    bounds: Bounds,
    now: datetime,
) -> list[EarnedBadge]:
    """Award ``d`` (``backfill``) to each of ``candidates`` who meets it and lacks it.

    ``candidates`` are mentor ids of ``d``'s organisation; ``bounds`` (the
    lowest and highest of them, or None) lets each criterion read only that
    range of the stats tables.  One statement; returns the new awards by
    mentor id.
    """
    m, e = mentors.c, earned_badges.c
    org = d.organisation_id
    qualifying = (
        select(
            new_uuid(conn),
            literal(d.id, e.badge_definition_id.type),
            m.peer_mentor_id,
            literal(org, e.organisation_id.type),
            literal(now, e.earned_at.type),
            literal("backfill", e.award_source.type),
        )
        .where(
            m.organisation_id == org,
            in_values(conn, m.peer_mentor_id, candidates),
            meets(conn, d.criteria, m.peer_mentor_id, org, bounds),
            ~held(d, m.peer_mentor_id),
        )
        .order_by(m.peer_mentor_id)
    )
    return insert_awards_from(conn, d, qualifying)


def award_mentors(
    conn: Connection, mentor_orgs: dict[UUID, UUID], *, now: datetime
) -> list[EarnedBadge]:
    """Backfill-award every enabled, automatic definition the mentors meet.

    ``mentor_orgs`` maps mentor id to organisation id; the caller holds
    their advisory locks.  One statement per definition of their
    organisations, whatever the number of mentors.
    """
    if not mentor_orgs:
        return []
    awarded: list[EarnedBadge] = []
    for d in enabled_definitions(conn, set(mentor_orgs.values())):
        if contains_raw(d.criteria):
            continue  # awarded only by hand
        candidates = sorted(m for m, org in mentor_orgs.items() if org == d.organisation_id)
        if candidates:
            bounds = (candidates[0], candidates[-1])
            awarded += award_qualifying(conn, d, candidates, bounds, now)
    return awarded
