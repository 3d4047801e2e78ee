"""``/api/v1/peer-mentors/{id}/year-summary``: *Ditt likepersonsår*."""

from __future__ import annotations

from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Query

from api.auth import CurrentPrincipal
from api.context import Context
from api.problems import not_found, problem_docs
from worker.tiers.summary import MentorNotFound, YearSummary, year_summary

router = APIRouter(prefix="/api/v1/peer-mentors", tags=["mentor views"])

#: Years the summary can be asked for; outside them there is nothing to show.
MIN_YEAR, MAX_YEAR = 1970, 2100


@router.get(
    "/{peer_mentor_id}/year-summary",
    response_model=YearSummary,
    summary="The mentor's year: activity, streak, tier with progress, badges and badge progress",
    responses=problem_docs(401, 404, 422),
)
def get_year_summary(
    principal: CurrentPrincipal,
    context: Context,
    peer_mentor_id: UUID,
    year: Annotated[
        int | None,
        Query(ge=MIN_YEAR, le=MAX_YEAR, description="Local calendar year; default: this year"),
    ] = None,
) -> YearSummary:
    if principal.mentor_id is not None and principal.mentor_id != peer_mentor_id:
        raise not_found("peer mentor")
    year = year or context.clock.now().astimezone(context.tz).year
    try:
        with context.transaction() as conn:
            summary = year_summary(conn, peer_mentor_id, year, clock=context.clock, tz=context.tz)
    except MentorNotFound:
        raise not_found("peer mentor") from None
    # Checked after the read: a mentor's organisation is only known from their data.
    if not principal.can_see_mentor(summary.organisation_id, peer_mentor_id):
        raise not_found("peer mentor")
    return summary
