"""Write a validated configuration in one transaction (``badges definitions apply``)."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Connection, select

from schema.tables import award_periods, badge_definitions, organisations, recognition_tiers
from worker.configuration.schema import Configuration, ConfigurationError
from worker.core.clock import Clock
from worker.db.sql import upsert_changed


@dataclass(frozen=True)
class ApplyReport:
    organisations: int
    badges: int
    tiers: int
    award_periods: int
    warnings: tuple[str, ...]

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
    return ApplyReport(org_count, badge_count, tier_count, period_count, tuple(config.warnings))
