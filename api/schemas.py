"""Request and response bodies of the API (the OpenAPI components)."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any, Literal
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field

from worker.badges.awards import EarnedBadge
from worker.configuration.schema import AwardPeriodConfig, BadgeDefinitionConfig, TierConfig
from worker.model.criteria import Criteria

TierName = Literal["bronze", "silver", "gold", "platinum"]


class _Out(BaseModel):
    model_config = ConfigDict(frozen=True)


class _In(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


# --- earned badges ---------------------------------------------------------------


class EarnedBadgePage(_Out):
    items: list[EarnedBadge]
    next_cursor: str | None = Field(
        description="Pass as `cursor` for the next page; null at the end"
    )


class EarnedBadgeCheck(_Out):
    earned: bool
    earned_badge: EarnedBadge | None


class AwardRequest(_In):
    badge_definition_id: UUID
    peer_mentor_id: UUID


# --- configuration ---------------------------------------------------------------


class BadgeDefinitionOut(_Out):
    id: UUID
    organisation_id: UUID
    code: str
    name: str
    description: str
    enabled: bool
    revocable: bool
    criteria: Criteria


class TierOut(_Out):
    id: UUID
    organisation_id: UUID
    level: TierName
    min_assignments: int
    min_streak: int
    activity_types: list[str]


class AwardPeriodOut(_Out):
    id: UUID
    organisation_id: UUID
    name: str
    start_date: date
    end_date: date
    is_active: bool = Field(description="The stored admin switch")
    is_currently_active: bool = Field(description="Active flag on and today within the period")


class BadgeDefinitionList(_Out):
    items: list[BadgeDefinitionOut]
    warnings: list[ConfigWarning] = []


class TierList(_Out):
    items: list[TierOut]


class AwardPeriodList(_Out):
    items: list[AwardPeriodOut]


class BadgeDefinitionsIn(_In):
    """Badge definitions to create or update, keyed by (organisation_id, code)."""

    items: list[BadgeDefinitionConfig] = Field(max_length=1000)


class TiersIn(_In):
    """Tiers to create or update, keyed by (organisation_id, level)."""

    items: list[TierConfig] = Field(max_length=1000)


class AwardPeriodsIn(_In):
    """Award periods to create or update, keyed by (organisation_id, name)."""

    items: list[AwardPeriodConfig] = Field(max_length=1000)


class ConfigWarning(_Out):
    path: str
    message: str


class BadgePreview(_Out):
    """What evaluating existing mentors against one definition would do (a dry run)."""

    badge_definition_id: UUID
    code: str
    newly_earned: int = Field(description="Mentors who already qualify and do not hold it yet")
    lost: int = Field(description="Holders who no longer qualify (revocable definitions only)")


class ConfigResult(_Out):
    dry_run: bool
    changed: int = Field(description="Rows created or updated (or that would be, in a dry run)")
    warnings: list[ConfigWarning]
    evaluation_enqueued: bool = Field(
        default=False,
        description=(
            "Writes only: `badges.evaluate_definitions` was enqueued on the maintenance queue; "
            "it evaluates every existing mentor of the organisation against the definitions "
            "created, enabled or whose criteria changed (backfill awards, in-app notification "
            "only) and re-evaluates tiers whose configuration changed"
        ),
    )
    preview: list[BadgePreview] = Field(
        default_factory=list,
        description=(
            "Dry runs of badge definitions: per definition created, enabled or whose criteria "
            "changed, how many existing mentors would newly earn it and lose it"
        ),
    )


BadgeDefinitionList.model_rebuild()


# --- notifications ---------------------------------------------------------------


class NotificationOut(_Out):
    id: UUID
    peer_mentor_id: UUID
    organisation_id: UUID
    kind: str
    payload: dict[str, Any]
    created_at: datetime
    read_at: datetime | None


class NotificationPage(_Out):
    items: list[NotificationOut]
    next_cursor: str | None


# --- operations ------------------------------------------------------------------


class Check(_Out):
    status: Literal["ok", "error"]
    duration_ms: float
    error: str | None = None


class Health(_Out):
    status: Literal["ok", "error"]
    checks: dict[str, Check]
