"""Badge definitions, tiers and award periods: GET, PUT and ``/validate`` dry runs.

``PUT`` creates or updates the items it is given (keyed by organisation and
code / level / name) and leaves others alone, all or nothing, like
``badges definitions apply``.  ``POST …/validate`` runs the same checks and
reports what would change, writing nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar
from uuid import UUID

from fastapi import APIRouter
from sqlalchemy import Connection

from api.auth import CurrentPrincipal, Principal
from api.configuration import Section, write_section
from api.context import ApiContext, Context
from api.pagination import OrganisationParam
from api.problems import problem_docs
from api.queries import award_periods_of, badge_definitions_of, tiers_of
from api.schemas import (
    AwardPeriodList,
    AwardPeriodOut,
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

_READ_ERRORS = problem_docs(401, 403, 422)
_READ_ROUTE: dict[str, Any] = {"responses": _READ_ERRORS}
T = TypeVar("T")
_WRITE_ERRORS = problem_docs(401, 403, 422)


def _read(
    principal: Principal,
    context: ApiContext,
    organisation_id: UUID | None,
    read: Callable[[Connection, UUID], T],
) -> T:
    """``read`` of the organisation the caller may see (their own, or the one the service role names)."""
    org = principal.organisation_scope(organisation_id)
    with context.transaction() as conn:
        return read(conn, org)


@router.get("/badge-definitions", summary="An organisation's badge definitions", **_READ_ROUTE)
def list_badge_definitions(
    principal: CurrentPrincipal, context: Context, organisation_id: OrganisationParam = None
) -> BadgeDefinitionList:
    items = _read(principal, context, organisation_id, badge_definitions_of)
    warnings = [
        ConfigWarning(path=f"$.items[{i}].criteria", message=RAW_WARNING)
        for i, item in enumerate(items)
        if contains_raw(item.criteria)
    ]
    return BadgeDefinitionList(items=items, warnings=warnings)


@router.get("/tiers", summary="An organisation's tiers", **_READ_ROUTE)
def list_tiers(
    principal: CurrentPrincipal, context: Context, organisation_id: OrganisationParam = None
) -> TierList:
    return TierList(items=_read(principal, context, organisation_id, tiers_of))


@router.get("/award-periods", summary="An organisation's award periods", **_READ_ROUTE)
def list_award_periods(
    principal: CurrentPrincipal, context: Context, organisation_id: OrganisationParam = None
) -> AwardPeriodList:
    def read(conn: Connection, org: UUID) -> list[AwardPeriodOut]:
        return award_periods_of(conn, org, clock=context.clock, tz=context.tz)

    return AwardPeriodList(items=_read(principal, context, organisation_id, read))


def _write_routes(path: str, section: Section, body: type[Any], *, name: str, what: str) -> None:
    """``PUT path`` and ``POST path/validate`` for one configuration section."""

    def put(principal: CurrentPrincipal, context: Context, body: Any) -> ConfigResult:
        return write_section(context, principal, section, body.items, dry_run=False)

    def validate(principal: CurrentPrincipal, context: Context, body: Any) -> ConfigResult:
        return write_section(context, principal, section, body.items, dry_run=True)

    for handler in (put, validate):
        handler.__annotations__["body"] = body
    router.put(
        path,
        response_model=ConfigResult,
        name=f"put_{name}",
        summary=f"Create or update {what} (validated like `badges definitions apply`)",
        responses=_WRITE_ERRORS,
    )(put)
    router.post(
        f"{path}/validate",
        response_model=ConfigResult,
        name=f"validate_{name}",
        summary=f"Dry run of PUT {path}: validate, report what would change",
        responses=_WRITE_ERRORS,
    )(validate)


_write_routes(
    "/badge-definitions",
    "badges",
    BadgeDefinitionsIn,
    name="badge_definitions",
    what="badge definitions",
)
_write_routes("/tiers", "tiers", TiersIn, name="tiers", what="tiers")
_write_routes(
    "/award-periods", "award_periods", AwardPeriodsIn, name="award_periods", what="award periods"
)
