"""Write a validated configuration in one transaction (``badges definitions apply``)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
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


@dataclass(frozen=True)
class _Section:
    """How one section of the file is written: its table, upsert key and compared columns."""

    table: Table
    name: str  # with organisation_id: the natural key (organisations: none)
    compare: tuple[str, ...]
    #: Stored columns whose change matters to mentors (what follows a change).
    state: tuple[str, ...] = ()

    def write(self, conn: Connection, rows: list[dict[str, Any]]) -> int:
        return upsert_changed(
            conn,
            self.table,
            rows,
            key=["organisation_id", self.name] if self.name != "id" else ["id"],
            compare=list(self.compare),
            also_set=["updated_at"],
        )

    def stored(self, conn: Connection, keys: list[tuple[UUID, Any]]) -> dict[Any, dict[str, Any]]:
        return _stored(conn, self.table, (self.name,), keys, self.state)


_ORGANISATIONS = _Section(organisations, "id", ("name", "language"))
_BADGES = _Section(
    badge_definitions,
    "code",
    ("name", "description", "criteria", "enabled", "revocable"),
    ("id", "criteria", "enabled"),
)
_TIERS = _Section(
    recognition_tiers,
    "level",
    ("min_assignments", "min_streak", "activity_types"),
    ("min_assignments", "min_streak", "activity_types"),
)
_PERIODS = _Section(
    award_periods,
    "name",
    ("start_date", "end_date", "is_active"),
    ("start_date", "end_date", "is_active"),
)


def _rows(config: Configuration, now: datetime) -> dict[_Section, list[dict[str, Any]]]:
    """The rows each section writes (``updated_at`` = now)."""
    return {
        _ORGANISATIONS: [{**o.model_dump(), "updated_at": now} for o in config.organisations],
        _BADGES: [
            {
                **b.model_dump(exclude={"criteria"}),
                "id": b.id,
                "criteria": b.criteria.model_dump(mode="json"),
                "updated_at": now,
            }
            for b in config.badges
        ],
        _TIERS: [
            {
                **t.model_dump(exclude={"level", "activity_types"}),
                "id": t.id,
                "level": int(t.level),
                "activity_types": sorted(t.activity_types),
                "updated_at": now,
            }
            for t in config.tiers
        ],
        _PERIODS: [{"id": p.id, **p.model_dump(), "updated_at": now} for p in config.award_periods],
    }


def apply_configuration(conn: Connection, config: Configuration, clock: Clock) -> ApplyReport:
    """Upsert everything in ``config``; rows already identical are left untouched.

    Also reports what the change means for existing mentors: the definitions
    to evaluate them against and the organisations whose tiers to re-evaluate.
    """
    check_references(conn, config)
    keys: dict[_Section, list[tuple[UUID, Any]]] = {
        _BADGES: [(b.organisation_id, b.code) for b in config.badges],
        _TIERS: [(t.organisation_id, int(t.level)) for t in config.tiers],
        _PERIODS: [(p.organisation_id, p.name) for p in config.award_periods],
    }
    before = {section: section.stored(conn, k) for section, k in keys.items()}
    written = {
        section: section.write(conn, rows) for section, rows in _rows(config, clock.now()).items()
    }
    after = {section: section.stored(conn, k) for section, k in keys.items()}
    tier_orgs = {
        key[0]
        for section in (_TIERS, _PERIODS)
        for key, state in after[section].items()
        if before[section].get(key) != state
    }
    return ApplyReport(
        written[_ORGANISATIONS],
        written[_BADGES],
        written[_TIERS],
        written[_PERIODS],
        tuple(config.warnings),
        evaluate_definitions=tuple(
            state["id"]
            for key, state in sorted(after[_BADGES].items(), key=lambda item: str(item[0]))
            if _needs_evaluation(before[_BADGES].get(key), state)
        ),
        tier_organisations=tuple(sorted(tier_orgs, key=str)),
    )


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
