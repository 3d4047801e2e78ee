"""Write a validated configuration in one transaction (``badges definitions apply``)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from uuid import UUID

from sqlalchemy import Connection, Table, select, tuple_

from schema.tables import award_periods, badge_definitions, organisations, recognition_tiers
from worker.configuration.schema import Configuration, ConfigurationError
from worker.core.clock import Clock
from worker.db.sql import upsert_changed
from worker.model.criteria import contains_raw, parse_criteria


@dataclass(frozen=True)
class ApplyReport:
    organisations: int
    badges: int
    tiers: int
    award_periods: int
    warnings: tuple[str, ...]
    #: Definitions created, enabled or with changed criteria (and enabled now):
    #: the ones every existing mentor must be evaluated against.
    evaluate_definitions: tuple[UUID, ...] = ()
    #: Organisations whose tiers or award periods were created or changed.
    tier_organisations: tuple[UUID, ...] = ()

    @property
    def changed(self) -> int:
        return self.organisations + self.badges + self.tiers + self.award_periods


def check_references(conn: Connection, config: Configuration) -> None:
    """Every referenced organisation must be in the file or already stored."""
    declared = {o.id for o in config.organisations}
    missing = config.organisation_ids - declared
    if missing:
        stored = set(
            conn.scalars(select(organisations.c.id).where(organisations.c.id.in_(missing)))
        )
        missing -= stored
    if missing:
        problems = []
        for section in ("badges", "tiers", "award_periods"):
            for index, item in enumerate(getattr(config, section)):
                if item.organisation_id in missing:
                    problems.append(
                        f"{section}[{index}].organisation_id: unknown organisation "
                        f"{item.organisation_id} (declare it under organisations)"
                    )
        raise ConfigurationError(problems)


def apply_configuration(conn: Connection, config: Configuration, clock: Clock) -> ApplyReport:
    """Upsert everything in ``config``; rows already identical are left untouched."""
    check_references(conn, config)
    now = clock.now()
    badge_keys = [(b.organisation_id, b.code) for b in config.badges]
    badges_before = _stored(conn, badge_definitions, ("code",), badge_keys, _BADGE_STATE)
    tier_keys = [(t.organisation_id, int(t.level)) for t in config.tiers]
    tiers_before = _stored(conn, recognition_tiers, ("level",), tier_keys, _TIER_STATE)
    period_keys = [(p.organisation_id, p.name) for p in config.award_periods]
    periods_before = _stored(conn, award_periods, ("name",), period_keys, _PERIOD_STATE)
    org_count = upsert_changed(
        conn,
        organisations,
        [{**o.model_dump(), "updated_at": now} for o in config.organisations],
        key=["id"],
        compare=["name", "language"],
        also_set=["updated_at"],
    )
    badge_count = upsert_changed(
        conn,
        badge_definitions,
        [
            {
                "id": b.id,
                "organisation_id": b.organisation_id,
                "code": b.code,
                "name": b.name,
                "description": b.description,
                "criteria": b.criteria.model_dump(mode="json"),
                "enabled": b.enabled,
                "revocable": b.revocable,
                "updated_at": now,
            }
            for b in config.badges
        ],
        key=["organisation_id", "code"],
        compare=["name", "description", "criteria", "enabled", "revocable"],
        also_set=["updated_at"],
    )
    tier_count = upsert_changed(
        conn,
        recognition_tiers,
        [
            {
                "id": t.id,
                "organisation_id": t.organisation_id,
                "level": int(t.level),
                "min_assignments": t.min_assignments,
                "min_streak": t.min_streak,
                "activity_types": sorted(t.activity_types),
                "updated_at": now,
            }
            for t in config.tiers
        ],
        key=["organisation_id", "level"],
        compare=["min_assignments", "min_streak", "activity_types"],
        also_set=["updated_at"],
    )
    period_count = upsert_changed(
        conn,
        award_periods,
        [{"id": p.id, **p.model_dump(), "updated_at": now} for p in config.award_periods],
        key=["organisation_id", "name"],
        compare=["start_date", "end_date", "is_active"],
        also_set=["updated_at"],
    )
    badges_after = _stored(conn, badge_definitions, ("code",), badge_keys, _BADGE_STATE)
    tier_orgs = {
        key[0]
        for before, after in (
            (tiers_before, _stored(conn, recognition_tiers, ("level",), tier_keys, _TIER_STATE)),
            (periods_before, _stored(conn, award_periods, ("name",), period_keys, _PERIOD_STATE)),
        )
        for key, state in after.items()
        if before.get(key) != state
    }
    return ApplyReport(
        org_count,
        badge_count,
        tier_count,
        period_count,
        tuple(config.warnings),
        evaluate_definitions=tuple(
            state["id"]
            for key, state in sorted(badges_after.items(), key=lambda item: str(item[0]))
            if _needs_evaluation(badges_before.get(key), state)
        ),
        tier_organisations=tuple(sorted(tier_orgs, key=str)),
    )


_BADGE_STATE = ("id", "criteria", "enabled")
_TIER_STATE = ("min_assignments", "min_streak", "activity_types")
_PERIOD_STATE = ("start_date", "end_date", "is_active")


def _stored(
    conn: Connection,
    table: Table,
    key: tuple[str],
    keys: list[tuple[UUID, Any]],
    state: tuple[str, ...],
) -> dict[tuple[UUID, Any], dict[str, Any]]:
    """The stored ``state`` columns of the rows with (organisation_id, key) in ``keys``."""
    if not keys:
        return {}
    columns = tuple_(table.c.organisation_id, table.c[key[0]])
    result = {}
    for start in range(0, len(keys), 500):
        for row in conn.execute(
            select(table.c.organisation_id, table.c[key[0]], *(table.c[c] for c in state)).where(
                columns.in_(keys[start : start + 500])
            )
        ):
            result[(row[0], row[1])] = {c: row._mapping[c] for c in state}
    return result


def _needs_evaluation(before: dict[str, Any] | None, after: dict[str, Any]) -> bool:
    """Created, enabled, or criteria changed, and enabled now (disabling changes nothing).

    ``raw`` criteria are manual-only: nothing to evaluate.
    """
    if not after["enabled"] or contains_raw(parse_criteria(after["criteria"])):
        return False
    return before is None or not before["enabled"] or before["criteria"] != after["criteria"]
