"""Badge definitions, tiers and award periods: GET, PUT and ``/validate`` dry runs.

``PUT`` creates or updates the items it is given (keyed by organisation and
code / level / name) and leaves others alone, all or nothing, like
``badges definitions apply``.  ``POST …/validate`` runs the same checks and
reports what would change, writing nothing.
"""

from __future__ import annotations

from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Query

from api.auth import CurrentPrincipal
from api.configuration import write_section
from api.context import Context
from api.problems import problem_docs
from api.queries import award_periods_of, badge_definitions_of, tiers_of
from api.schemas import (
    AwardPeriodList,
    AwardPeriodsIn,
    BadgeDefinitionList,
    BadgeDefinitionsIn,
    ConfigResult,
    ConfigWarning,
    TierList,
    TiersIn,
)
from worker.model.criteria import RAW_WARNING, contains_raw

router = APIRouter(prefix="/api/v1", tags=["configuration"])

OrganisationQuery = Annotated[
    UUID | None,
    Query(description="Required for the service role; others default to their own organisation"),
]
_READ_ERRORS = problem_docs(401, 403, 422)
_WRITE_ERRORS = problem_docs(401, 403, 422)


@router.get(
    "/badge-definitions",
    response_model=BadgeDefinitionList,
    summary="An organisation's badge definitions",
    responses=_READ_ERRORS,
)
def list_badge_definitions(
    principal: CurrentPrincipal, context: Context, organisation_id: OrganisationQuery = None
) -> BadgeDefinitionList:
    org = principal.organisation_scope(organisation_id)
    with context.transaction() as conn:
        items = badge_definitions_of(conn, org)
    warnings = [
        ConfigWarning(path=f"$.items[{i}].criteria", message=RAW_WARNING)
        for i, item in enumerate(items)
        if contains_raw(item.criteria)
    ]
    return BadgeDefinitionList(items=items, warnings=warnings)


@router.put(
    "/badge-definitions",
    response_model=ConfigResult,
    summary="Create or update badge definitions (validated like `badges definitions apply`)",
    responses=_WRITE_ERRORS,
)
def put_badge_definitions(
    principal: CurrentPrincipal, context: Context, body: BadgeDefinitionsIn
) -> ConfigResult:
    return write_section(context, principal, "badges", body.items, dry_run=False)


@router.post(
    "/badge-definitions/validate",
    response_model=ConfigResult,
    summary="Dry run of PUT /badge-definitions: validate, report what would change",
    responses=_WRITE_ERRORS,
)
def validate_badge_definitions(
    principal: CurrentPrincipal, context: Context, body: BadgeDefinitionsIn
) -> ConfigResult:
    return write_section(context, principal, "badges", body.items, dry_run=True)


@router.get(
    "/tiers", response_model=TierList, summary="An organisation's tiers", responses=_READ_ERRORS
)
def list_tiers(
    principal: CurrentPrincipal, context: Context, organisation_id: OrganisationQuery = None
) -> TierList:
    org = principal.organisation_scope(organisation_id)
    with context.transaction() as conn:
        return TierList(items=tiers_of(conn, org))


@router.put(
    "/tiers",
    response_model=ConfigResult,
    summary="Create or update tiers",
    responses=_WRITE_ERRORS,
)
def put_tiers(principal: CurrentPrincipal, context: Context, body: TiersIn) -> ConfigResult:
    return write_section(context, principal, "tiers", body.items, dry_run=False)


@router.post(
    "/tiers/validate",
    response_model=ConfigResult,
    summary="Dry run of PUT /tiers",
    responses=_WRITE_ERRORS,
)
def validate_tiers(principal: CurrentPrincipal, context: Context, body: TiersIn) -> ConfigResult:
    return write_section(context, principal, "tiers", body.items, dry_run=True)


@router.get(
    "/award-periods",
    response_model=AwardPeriodList,
    summary="An organisation's award periods",
    responses=_READ_ERRORS,
)
def list_award_periods(
    principal: CurrentPrincipal, context: Context, organisation_id: OrganisationQuery = None
) -> AwardPeriodList:
    org = principal.organisation_scope(organisation_id)
    with context.transaction() as conn:
        items = award_periods_of(conn, org, clock=context.clock, tz=context.tz)
    return AwardPeriodList(items=items)


@router.put(
    "/award-periods",
    response_model=ConfigResult,
    summary="Create or update award periods",
    responses=_WRITE_ERRORS,
)
def put_award_periods(
    principal: CurrentPrincipal, context: Context, body: AwardPeriodsIn
) -> ConfigResult:
    return write_section(context, principal, "award_periods", body.items, dry_run=False)


@router.post(
    "/award-periods/validate",
    response_model=ConfigResult,
    summary="Dry run of PUT /award-periods",
    responses=_WRITE_ERRORS,
)
def validate_award_periods(
    principal: CurrentPrincipal, context: Context, body: AwardPeriodsIn
) -> ConfigResult:
    return write_section(context, principal, "award_periods", body.items, dry_run=True)
