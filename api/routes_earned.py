"""``/api/v1/earned-badges``: list, read, check, award (idempotent) and revoke."""

from __future__ import annotations

import logging
from typing import Annotated, Any
from uuid import UUID

from fastapi import APIRouter, Query, Response
from sqlalchemy import Connection
from sqlalchemy.exc import DataError

from api.auth import CurrentPrincipal, Principal, Role
from api.context import Context
from api.metrics import record_award
from api.pagination import PAGE_SIZE, CursorParam, LimitParam, OrganisationParam
from api.problems import FieldProblem, invalid, not_found, problem_docs
from api.queries import mentor_organisation
from api.schemas import AwardRequest, EarnedBadgeCheck, EarnedBadgePage
from api.text import storable_text
from worker.badges.awards import (
    BadgeDefinition,
    EarnedBadge,
    InvalidCursor,
    NotFound,
    award_badge,
    get_definition,
    get_earned,
    get_earned_badges,
    get_earned_by_id,
    revoke,
)
from worker.notifications.outbox import notify_awards

log = logging.getLogger(__name__)
router = APIRouter(prefix="/api/v1/earned-badges", tags=["earned badges"])


def _invalid_cursor() -> Exception:
    return invalid(
        "the cursor is not one this API issued",
        [FieldProblem(location="query", path="cursor", message="invalid cursor")],
    )


def _visible_definition(
    conn: Connection, principal: Principal, definition_id: UUID
) -> BadgeDefinition:
    try:
        definition = get_definition(conn, definition_id)
    except NotFound:
        raise not_found("badge definition") from None
    if not principal.can_see_organisation(definition.organisation_id):
        raise not_found("badge definition")
    return definition


@router.get(
    "",
    response_model=EarnedBadgePage,
    summary="List earned badges (organisation-scoped, keyset-paginated)",
    responses=problem_docs(401, 403, 422),
)
def list_earned_badges(
    principal: CurrentPrincipal,
    context: Context,
    peer_mentor_id: UUID | None = None,
    organisation_id: OrganisationParam = None,
    limit: LimitParam = PAGE_SIZE,
    cursor: CursorParam = None,
) -> EarnedBadgePage:
    org = principal.organisation_scope(organisation_id)
    mentor = principal.mentor_scope(peer_mentor_id)
    try:
        with context.transaction() as conn:
            page = get_earned_badges(
                conn, organisation_id=org, mentor_id=mentor, limit=limit, cursor=cursor
            )
    except (InvalidCursor, DataError):
        # DataError: a well-formed cursor holding a value PostgreSQL cannot compare.
        raise _invalid_cursor() from None
    return EarnedBadgePage(items=page.items, next_cursor=page.next_cursor)


@router.get(
    "/check",
    response_model=EarnedBadgeCheck,
    summary="Has this mentor earned this badge?",
    responses=problem_docs(401, 403, 404, 422),
)
def check_earned_badge(
    principal: CurrentPrincipal, context: Context, badge_definition_id: UUID, peer_mentor_id: UUID
) -> EarnedBadgeCheck:
    principal.mentor_scope(peer_mentor_id)
    with context.transaction() as conn:
        definition = _visible_definition(conn, principal, badge_definition_id)
        earned = get_earned(conn, definition.id, peer_mentor_id)
    return EarnedBadgeCheck(earned=earned is not None, earned_badge=earned)


#: One earned badge by id: 404 unless the caller may see it.
_ONE: dict[str, Any] = {"response_model": EarnedBadge, "responses": problem_docs(401, 404, 422)}


@router.get("/{earned_badge_id}", summary="Read one earned badge", **_ONE)
def get_earned_badge(
    principal: CurrentPrincipal, context: Context, earned_badge_id: UUID
) -> EarnedBadge:
    with context.transaction() as conn:
        earned = get_earned_by_id(conn, earned_badge_id)
    if earned is None or not principal.can_see_mentor(
        earned.organisation_id, earned.peer_mentor_id
    ):
        raise not_found("earned badge")
    return earned


@router.post(
    "",
    response_model=EarnedBadge,
    status_code=201,
    summary="Award a badge (idempotent: 201 new, 200 already earned)",
    responses={
        200: {"model": EarnedBadge, "description": "Already earned: the existing record"},
        **problem_docs(401, 403, 404, 422),
    },
)
def award_earned_badge(
    principal: CurrentPrincipal, context: Context, body: AwardRequest, response: Response
) -> EarnedBadge:
    """The worker's award path: the same service function, outbox rows in the same
    transaction, delivery tasks only after the commit."""
    principal.require(Role.SERVICE, Role.ORG_ADMIN)
    now = context.clock.now()
    with context.transaction() as conn:
        definition = _visible_definition(conn, principal, body.badge_definition_id)
        member_of = mentor_organisation(conn, body.peer_mentor_id)
        if member_of is not None and member_of != definition.organisation_id:
            raise invalid(
                "the peer mentor is not a member of the badge's organisation",
                [FieldProblem(location="body", path="$.peer_mentor_id", message="not a member")],
            )
        outcome = award_badge(
            conn,
            definition.id,
            body.peer_mentor_id,
            now=now,
            source="manual",
            actor=principal.actor,
        )
        if outcome.created:
            notify_awards(conn, [outcome.earned], now=now)
    record_award(created=outcome.created)
    response.status_code = 201 if outcome.created else 200
    return outcome.earned


#: The audit row's reason when the caller gives none.
NO_REASON = "revoked through the API (no reason given)"


@router.delete(
    "/{earned_badge_id}",
    status_code=204,
    summary="Revoke an earned badge (service role; audited, with the reason when given)",
    responses=problem_docs(401, 403, 404, 422),
)
def revoke_earned_badge(
    principal: CurrentPrincipal,
    context: Context,
    earned_badge_id: UUID,
    reason: Annotated[
        str | None,
        Query(max_length=500, description="Optional; stored in the audit row"),
    ] = None,
) -> Response:
    principal.require(Role.SERVICE)
    given = storable_text(reason, location="query", path="reason").strip() if reason else ""
    with context.transaction() as conn:
        earned = get_earned_by_id(conn, earned_badge_id)
        if earned is None:
            raise not_found("earned badge")
        revoke(
            conn, earned, reason=given or NO_REASON, actor=principal.actor, now=context.clock.now()
        )
    return Response(status_code=204)
