"""Configuration writes through the API: the CLI's validation, plus who may write what.

The body's items are validated by the same pydantic models as
``badges definitions apply`` (FastAPI reports their errors with JSON paths);
then :func:`worker.configuration.schema.validate_configuration` checks the section as
a whole (duplicates) and :func:`worker.configuration.apply.apply_configuration`
checks the referenced organisations and writes, exactly as the CLI does.
Their ``section[i].field: message`` lines are mapped back to body paths.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Sequence
from typing import Literal

from api.auth import Principal, Role
from api.context import ApiContext
from api.problems import FieldProblem, body_path, forbidden, invalid
from api.schemas import BadgePreview, ConfigResult, ConfigWarning
from api.text import require_storable
from worker.badges.retroactive import BadgeCounts
from worker.configuration.apply import ApplyReport, apply_configuration
from worker.configuration.followup import preview_configuration
from worker.configuration.schema import (
    AwardPeriodConfig,
    BadgeDefinitionConfig,
    Configuration,
    ConfigurationError,
    TierConfig,
    validate_configuration,
)
from worker.model.criteria import RAW_WARNING, contains_raw

log = logging.getLogger(__name__)

Section = Literal["badges", "tiers", "award_periods"]
ConfigItem = BadgeDefinitionConfig | TierConfig | AwardPeriodConfig
_LINE = re.compile(
    r"^(?P<section>badges|tiers|award_periods)\[(?P<index>\d+)\]"
    r"(?P<rest>(?:\.[A-Za-z_]\w*|\[\d+\])*): (?P<message>.*)$",
    re.DOTALL,
)


def _problems(lines: Sequence[str]) -> list[FieldProblem]:
    """``badges[1].organisation_id: unknown …`` -> ``$.items[1].organisation_id``."""
    out = []
    for line in lines:
        match = _LINE.match(line)
        if match is None:
            out.append(FieldProblem(location="body", path="$.items", message=line))
            continue
        path = f"$.items[{match['index']}]{match['rest']}"
        out.append(FieldProblem(location="body", path=path, message=match["message"]))
    return out


def _check_permissions(principal: Principal, items: Sequence[ConfigItem]) -> None:
    principal.require(Role.SERVICE, Role.ORG_ADMIN)
    outside = _flag_items(
        items,
        "organisation_id",
        "outside this token's organisation",
        lambda item: not principal.can_see_organisation(item.organisation_id),
    )
    if outside:
        raise forbidden("an org admin may configure only their own organisation", outside)
    raw = _flag_items(
        items,
        "criteria",
        "raw criteria are reserved for org admins",
        lambda item: (
            isinstance(item, BadgeDefinitionConfig)
            and contains_raw(item.criteria)
            and principal.role is not Role.ORG_ADMIN
        ),
    )
    if raw:
        raise forbidden("the raw escape hatch is only for org admins", raw)


def _flag_items(
    items: Sequence[ConfigItem], field: str, message: str, applies: Callable[[ConfigItem], bool]
) -> list[FieldProblem]:
    """One problem at ``$.items[i].<field>`` for each item ``applies`` to."""
    return [
        FieldProblem(location="body", path=body_path("items", index, field), message=message)
        for index, item in enumerate(items)
        if applies(item)
    ]


def _warnings(items: Sequence[ConfigItem]) -> list[ConfigWarning]:
    return [
        ConfigWarning(path=body_path("items", index, "criteria"), message=RAW_WARNING)
        for index, item in enumerate(items)
        if isinstance(item, BadgeDefinitionConfig) and contains_raw(item.criteria)
    ]


def _validate(section: Section, items: Sequence[ConfigItem]) -> Configuration:
    dumped = [item.model_dump(mode="json") for item in items]
    require_storable({"items": dumped})
    try:
        return validate_configuration({section: dumped})
    except ConfigurationError as exc:
        raise invalid(
            "the configuration is invalid; nothing was written", _problems(exc.problems)
        ) from None


def write_section(
    context: ApiContext,
    principal: Principal,
    section: Section,
    items: Sequence[ConfigItem],
    *,
    dry_run: bool,
) -> ConfigResult:
    """Validate, check permissions and write (or, in a dry run, roll back) one section.

    A dry run also counts what the retroactive evaluation would award and
    revoke; a write enqueues that evaluation once the change committed.
    """
    _check_permissions(principal, items)
    config = _validate(section, items)
    counts: list[BadgeCounts] = []
    report: ApplyReport
    try:
        if dry_run:
            with context.dry_run() as conn:
                report, counts = preview_configuration(conn, config, context.clock)
        else:
            with context.transaction() as conn:
                report = apply_configuration(conn, config, context.clock)
    except ConfigurationError as exc:
        raise invalid(
            "the configuration is invalid; nothing was written", _problems(exc.problems)
        ) from None
    return ConfigResult(
        dry_run=dry_run,
        changed=report.changed,
        warnings=_warnings(items),
        evaluation_enqueued=False if dry_run else _enqueue(report),
        preview=[
            BadgePreview(
                badge_definition_id=c.definition_id,
                code=c.code,
                newly_earned=c.newly_earned,
                lost=c.lost,
            )
            for c in counts
        ],
    )


def _enqueue(report: ApplyReport) -> bool:
    """Enqueue ``badges.evaluate_definitions`` for what the committed write changed."""
    from worker.tasks.configuration import enqueue_evaluation

    return enqueue_evaluation(list(report.evaluate_definitions), list(report.tier_organisations))
