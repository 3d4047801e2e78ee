"""Database chores of the scenarios: migrate, configure, count, reset."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Engine, text

from bench.data import configuration

#: Tables holding configuration; everything else is activity and may be reset.
CONFIGURATION_TABLES = {
    "organisations",
    "badge_definitions",
    "recognition_tiers",
    "award_periods",
    "alembic_version",
}


def prepare(database_url: str, config: dict[str, Any] | None = None) -> Engine:
    """Migrate the database to head and apply ``config`` (default: one org with badges)."""
    from schema.migrate import upgrade
    from worker.configuration.apply import apply_configuration
    from worker.configuration.schema import validate_configuration
    from worker.core.clock import SystemClock
    from worker.db.engine import make_engine

    engine = make_engine(database_url)
    upgrade(engine)
    parsed = validate_configuration(config if config is not None else configuration())
    with engine.begin() as conn:
        apply_configuration(conn, parsed, SystemClock())
    return engine


def processed_count(engine: Engine) -> int:
    """Events committed so far (one ``processed_events`` row per event, same transaction)."""
    with engine.connect() as conn:
        return int(conn.execute(text("SELECT count(*) FROM processed_events")).scalar_one())


def reset_activity(engine: Engine) -> None:
    """Empty every table except the configuration (between runs of one scenario)."""
    from schema.tables import metadata

    names = [t.name for t in metadata.sorted_tables if t.name not in CONFIGURATION_TABLES]
    with engine.begin() as conn:
        conn.execute(text(f"TRUNCATE {', '.join(names)}"))


def analyze(engine: Engine) -> None:
    """Refresh planner statistics after a bulk load (as autovacuum would, eventually)."""
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text("ANALYZE"))
