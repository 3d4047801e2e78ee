"""``/api/v1/notifications``: a mentor's in-app notifications, and marking them read."""

from __future__ import annotations

from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Query

from api.auth import CurrentPrincipal
from api.context import Context
from api.pagination import PAGE_SIZE, CursorParam, LimitParam, OrganisationParam
from api.problems import FieldProblem, invalid, not_found, problem_docs
from api.queries import get_notification, list_notifications, mark_read
from api.schemas import NotificationOut, NotificationPage
from worker.badges.awards import InvalidCursor

router = APIRouter(prefix="/api/v1/notifications", tags=["notifications"])


@router.get(
    "",
    response_model=NotificationPage,
    summary="Notifications, newest first (a mentor sees their own)",
    responses=problem_docs(401, 403, 422),
)
def list_(
    principal: CurrentPrincipal,
    context: Context,
    unread: Annotated[bool | None, Query(description="true: only unread; false: only read")] = None,
    peer_mentor_id: UUID | None = None,
    organisation_id: OrganisationParam = None,
    limit: LimitParam = PAGE_SIZE,
    cursor: CursorParam = None,
) -> NotificationPage:
    org = principal.organisation_scope(organisation_id)
    mentor = principal.mentor_scope(peer_mentor_id)
    try:
        with context.transaction() as conn:
            items, next_cursor = list_notifications(
                conn,
                organisation_id=org,
                mentor_id=mentor,
                unread=unread,
                limit=limit,
                cursor=cursor,
            )
    except InvalidCursor:
        raise invalid(
            "the cursor is not one this API issued",
            [FieldProblem(location="query", path="cursor", message="invalid cursor")],
        ) from None
    return NotificationPage(items=items, next_cursor=next_cursor)


@router.post(
    "/{notification_id}/read",
    response_model=NotificationOut,
    summary="Mark a notification read (idempotent: the first read time is kept)",
    responses=problem_docs(401, 404, 422),
)
def read(principal: CurrentPrincipal, context: Context, notification_id: UUID) -> NotificationOut:
    with context.transaction() as conn:
        found = get_notification(conn, notification_id)
        if found is None or not principal.can_see_mentor(
            found.organisation_id, found.peer_mentor_id
        ):
            raise not_found("notification")
        return mark_read(conn, notification_id, now=context.clock.now())
