"""Awarding, reading and revoking earned badges (SQL).

The unique constraint on ``(badge_definition_id, peer_mentor_id)`` is the final
guard: awarding is ``INSERT … ON CONFLICT DO NOTHING RETURNING``.  When the
insert conflicts, the existing row is read in a *separate* statement: the
conflicting row was committed by another transaction after this statement's
snapshot began, so the same statement could not have seen it.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Collection, Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal
from uuid import UUID, uuid4

from pydantic import BaseModel, ConfigDict
from sqlalchemy import Connection, and_, or_, select

from schema.tables import badge_audit, badge_definitions, earned_badges
from worker.core.clock import as_utc
from worker.core.models import batches
from worker.db.sql import insert_for
from worker.model.criteria import Criteria, parse_criteria

#: ``get_earned_badges`` never returns more than this many rows per page.
MAX_PAGE_SIZE = 200
DEFAULT_PAGE_SIZE = 50
AwardSource = Literal["evaluation", "manual", "backfill"]


class EarnedBadge(BaseModel):
    model_config = ConfigDict(frozen=True)

    id: UUID
    badge_definition_id: UUID
    code: str
    name: str
    peer_mentor_id: UUID
    organisation_id: UUID
    earned_at: datetime


@dataclass(frozen=True)
class BadgeDefinition:
    id: UUID
    organisation_id: UUID
    code: str
    name: str
    criteria: Criteria
    enabled: bool
    revocable: bool

    def earned(self, earned_id: UUID, peer_mentor_id: UUID, earned_at: datetime) -> EarnedBadge:
        """The award of this badge to ``peer_mentor_id`` (values as stored)."""
        # The plain constructor, not ``model_construct``: its validation of
        # values that already have the right types runs in pydantic-core and
        # is faster than ``model_construct``'s Python loop over the fields.
        return EarnedBadge(
            id=earned_id,
            badge_definition_id=self.id,
            code=self.code,
            name=self.name,
            peer_mentor_id=peer_mentor_id,
            organisation_id=self.organisation_id,
            earned_at=as_utc(earned_at),
        )


class NotFound(LookupError):
    pass


class InvalidCursor(ValueError):
    pass


_EARNED_COLUMNS = (
    earned_badges.c.id,
    earned_badges.c.badge_definition_id,
    badge_definitions.c.code,
    badge_definitions.c.name,
    earned_badges.c.peer_mentor_id,
    earned_badges.c.organisation_id,
    earned_badges.c.earned_at,
)


def _earned_query() -> Any:
    return select(*_EARNED_COLUMNS).join(
        badge_definitions, badge_definitions.c.id == earned_badges.c.badge_definition_id
    )


def definition_from_row(row: Any) -> BadgeDefinition:
    return BadgeDefinition(
        id=row.id,
        organisation_id=row.organisation_id,
        code=row.code,
        name=row.name,
        criteria=parse_criteria(row.criteria),
        enabled=row.enabled,
        revocable=row.revocable,
    )


def get_definition(conn: Connection, definition_id: UUID) -> BadgeDefinition:
    row = conn.execute(
        select(badge_definitions).where(badge_definitions.c.id == definition_id)
    ).first()
    if row is None:
        raise NotFound(f"no badge definition {definition_id}")
    return definition_from_row(row)


def get_definition_by_code(conn: Connection, organisation_id: UUID, code: str) -> BadgeDefinition:
    row = conn.execute(
        select(badge_definitions).where(
            badge_definitions.c.organisation_id == organisation_id, badge_definitions.c.code == code
        )
    ).first()
    if row is None:
        raise NotFound(f"no badge {code!r} in organisation {organisation_id}")
    return definition_from_row(row)


def enabled_definitions(
    conn: Connection, organisation_ids: Collection[UUID]
) -> list[BadgeDefinition]:
    rows = conn.execute(
        select(badge_definitions)
        .where(
            badge_definitions.c.organisation_id.in_(sorted(organisation_ids)),
            badge_definitions.c.enabled.is_(True),
        )
        .order_by(badge_definitions.c.code)
    )
    return [definition_from_row(row) for row in rows]


def insert_awards(
    conn: Connection,
    awards: Iterable[tuple[BadgeDefinition, UUID]],
    earned_at: datetime,
    source: AwardSource,
) -> list[EarnedBadge]:
    """Insert awards that do not exist yet; return only the newly created ones."""
    by_key = {(d.id, mentor): d for d, mentor in awards}
    if not by_key:
        return []
    rows = [
        {
            "id": uuid4(),
            "badge_definition_id": d.id,
            "peer_mentor_id": mentor,
            "organisation_id": d.organisation_id,
            "earned_at": earned_at,
            "award_source": source,
        }
        for (_, mentor), d in sorted(
            by_key.items(), key=lambda item: (str(item[0][0]), str(item[0][1]))
        )
    ]
    stmt = (
        insert_for(conn, earned_badges)
        .on_conflict_do_nothing(index_elements=["badge_definition_id", "peer_mentor_id"])
        .returning(
            earned_badges.c.id,
            earned_badges.c.badge_definition_id,
            earned_badges.c.peer_mentor_id,
            earned_badges.c.earned_at,
        )
    )
    created = []
    for row in conn.execute(stmt, rows):
        definition = by_key[(row.badge_definition_id, row.peer_mentor_id)]
        created.append(definition.earned(row.id, row.peer_mentor_id, row.earned_at))
    return created


@dataclass(frozen=True)
class AwardOutcome:
    earned: EarnedBadge
    created: bool


def award_badge(
    conn: Connection,
    definition_id: UUID,
    mentor_id: UUID,
    *,
    now: datetime,
    source: AwardSource = "manual",
    actor: str = "system",
) -> AwardOutcome:
    """Award one badge idempotently: the existing record when already earned.

    Manual awards leave an audit row.  Notifications for a new award are
    written to the outbox by the caller's unit of work (see ``worker.notifications.outbox``).
    """
    definition = get_definition(conn, definition_id)
    created = insert_awards(conn, [(definition, mentor_id)], now, source)
    if created:
        if source == "manual":
            _audit(
                conn, created[0], action="manual_award", reason="manual award", actor=actor, now=now
            )
        return AwardOutcome(created[0], True)
    existing = get_earned(conn, definition_id, mentor_id)
    if existing is None:  # pragma: no cover - the constraint guarantees a row
        raise RuntimeError("award conflicted but no existing row was found")
    return AwardOutcome(existing, False)


def get_earned(conn: Connection, definition_id: UUID, mentor_id: UUID) -> EarnedBadge | None:
    row = conn.execute(
        _earned_query().where(
            earned_badges.c.badge_definition_id == definition_id,
            earned_badges.c.peer_mentor_id == mentor_id,
        )
    ).first()
    return EarnedBadge.model_validate(row._mapping) if row else None


def get_earned_by_id(conn: Connection, earned_id: UUID) -> EarnedBadge | None:
    row = conn.execute(_earned_query().where(earned_badges.c.id == earned_id)).first()
    return EarnedBadge.model_validate(row._mapping) if row else None


def earned_definition_ids(conn: Connection, mentor_ids: Collection[UUID]) -> set[tuple[UUID, UUID]]:
    """(definition id, mentor id) for every badge the mentors hold."""
    ids = sorted(set(mentor_ids))
    result: set[tuple[UUID, UUID]] = set()
    for batch in batches(ids):
        rows = conn.execute(
            select(earned_badges.c.badge_definition_id, earned_badges.c.peer_mentor_id).where(
                earned_badges.c.peer_mentor_id.in_(batch)
            )
        )
        result |= {(r.badge_definition_id, r.peer_mentor_id) for r in rows}
    return result


@dataclass(frozen=True)
class EarnedPage:
    items: list[EarnedBadge]
    next_cursor: str | None


def _encode_cursor(badge: EarnedBadge) -> str:
    raw = json.dumps([badge.earned_at.isoformat(), str(badge.id)]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode_cursor(cursor: str) -> tuple[datetime, UUID]:
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        earned_at, earned_id = json.loads(base64.urlsafe_b64decode(padded.encode()))
        return datetime.fromisoformat(earned_at), UUID(earned_id)
    except (ValueError, TypeError) as exc:
        raise InvalidCursor(f"invalid cursor {cursor!r}") from exc


def get_earned_badges(
    conn: Connection,
    *,
    organisation_id: UUID,
    mentor_id: UUID | None = None,
    limit: int = DEFAULT_PAGE_SIZE,
    cursor: str | None = None,
) -> EarnedPage:
    """One page of an organisation's earned badges, oldest first (keyset pagination).

    ``limit`` is clamped to [1, MAX_PAGE_SIZE]; ``cursor`` is the opaque
    ``next_cursor`` of the previous page.
    """
    limit = max(1, min(limit, MAX_PAGE_SIZE))
    query = _earned_query().where(earned_badges.c.organisation_id == organisation_id)
    if mentor_id is not None:
        query = query.where(earned_badges.c.peer_mentor_id == mentor_id)
    if cursor is not None:
        after_at, after_id = _decode_cursor(cursor)
        query = query.where(
            or_(
                earned_badges.c.earned_at > after_at,
                and_(earned_badges.c.earned_at == after_at, earned_badges.c.id > after_id),
            )
        )
    rows = conn.execute(
        query.order_by(earned_badges.c.earned_at, earned_badges.c.id).limit(limit + 1)
    )
    items = [EarnedBadge.model_validate(r._mapping) for r in rows]
    next_cursor = _encode_cursor(items[limit - 1]) if len(items) > limit else None
    return EarnedPage(items[:limit], next_cursor)


def earned_by_mentor(conn: Connection, mentor_id: UUID) -> list[EarnedBadge]:
    """All of one mentor's earned badges, oldest first (operator view, unpaginated)."""
    rows = conn.execute(
        _earned_query()
        .where(earned_badges.c.peer_mentor_id == mentor_id)
        .order_by(earned_badges.c.earned_at, earned_badges.c.id)
    )
    return [EarnedBadge.model_validate(r._mapping) for r in rows]


#: What an audit row keeps of the award besides its id.
_AUDITED = {"badge_definition_id", "peer_mentor_id", "organisation_id", "earned_at"}


def _audit(
    conn: Connection, earned: EarnedBadge, *, action: str, reason: str, actor: str, now: datetime
) -> None:
    conn.execute(
        badge_audit.insert().values(
            action=action,
            earned_badge_id=earned.id,
            **earned.model_dump(include=_AUDITED),
            reason=reason,
            actor=actor,
            recorded_at=now,
        )
    )


def revoke(
    conn: Connection, earned: EarnedBadge, *, reason: str, actor: str, now: datetime
) -> bool:
    """Remove one earned badge, leaving an audit row.  False if it was already gone."""
    deleted = conn.execute(earned_badges.delete().where(earned_badges.c.id == earned.id)).rowcount
    if not deleted:
        return False
    _audit(conn, earned, action="revoked", reason=reason, actor=actor, now=now)
    return True


def revocable_earned(conn: Connection, mentor_ids: Collection[UUID]) -> list[EarnedBadge]:
    ids = sorted(set(mentor_ids))
    if not ids:
        return []
    rows = conn.execute(
        _earned_query().where(
            earned_badges.c.peer_mentor_id.in_(ids), badge_definitions.c.revocable.is_(True)
        )
    )
    return [EarnedBadge.model_validate(r._mapping) for r in rows]


#: The columns an ``INSERT … SELECT`` of awards fills, in this order.
AWARD_COLUMNS = (
    "id",
    "badge_definition_id",
    "peer_mentor_id",
    "organisation_id",
    "earned_at",
    "award_source",
)


def insert_awards_from(
    conn: Connection, definition: BadgeDefinition, rows: Any
) -> list[EarnedBadge]:
    """Award ``definition`` for every row of the select ``rows`` (columns :data:`AWARD_COLUMNS`).

    ``ON CONFLICT DO NOTHING``: a mentor who already holds the badge keeps the
    award they have; only the awards inserted come back, by mentor id.
    """
    e = earned_badges.c
    stmt = (
        insert_for(conn, earned_badges)
        .from_select(list(AWARD_COLUMNS), rows)
        .on_conflict_do_nothing(index_elements=["badge_definition_id", "peer_mentor_id"])
        .returning(e.id, e.peer_mentor_id, e.earned_at)
    )
    # In mentor id order, as UUIDs order, by their integers (not UUID.__lt__, in Python).
    rows = sorted(conn.execute(stmt).all(), key=lambda r: r.peer_mentor_id.int)
    return [definition.earned(r.id, r.peer_mentor_id, r.earned_at) for r in rows]
