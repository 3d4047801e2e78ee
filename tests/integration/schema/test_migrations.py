"""Migrations on PostgreSQL and SQLite, and the deduplicating constraint migration."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Engine, inspect, text

from schema.migrate import current_revision, upgrade
from schema.tables import metadata
from tests import services
from worker.db.engine import make_engine

CONTRACT_TABLES = {
    "earned_badges": {
        "id",
        "badge_definition_id",
        "peer_mentor_id",
        "organisation_id",
        "earned_at",
    },
    "notifications": {
        "id",
        "peer_mentor_id",
        "organisation_id",
        "kind",
        "payload",
        "created_at",
        "read_at",
    },
    "tier_assignments": {
        "id",
        "peer_mentor_id",
        "organisation_id",
        "award_period_id",
        "tier",
        "assigned_at",
    },
    "badge_definitions": {
        "id",
        "organisation_id",
        "code",
        "name",
        "criteria",
        "enabled",
        "revocable",
    },
}
ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture
def empty_pg() -> Iterator[Engine]:
    url = services.create_database()
    engine = make_engine(url)
    try:
        yield engine
    finally:
        engine.dispose()
        services.drop_database(url)


def _assert_contract_tables(engine: Engine) -> None:
    inspector = inspect(engine)
    for table, columns in CONTRACT_TABLES.items():
        assert columns <= {c["name"] for c in inspector.get_columns(table)}, table
    uniques = {tuple(u["column_names"]) for u in inspector.get_unique_constraints("earned_badges")}
    assert ("badge_definition_id", "peer_mentor_id") in uniques
    assert ("peer_mentor_id", "award_period_id") in {
        tuple(u["column_names"]) for u in inspector.get_unique_constraints("tier_assignments")
    }
    assert ("organisation_id", "code") in {
        tuple(u["column_names"]) for u in inspector.get_unique_constraints("badge_definitions")
    }
    indexed = {tuple(i["column_names"]) for i in inspector.get_indexes("activity_ledger")}
    assert ("peer_mentor_id", "activity_date", "activity_type") in indexed


def test_cli_upgrade_on_empty_postgres_twice(empty_pg: Engine) -> None:
    env = {**os.environ, "DATABASE_URL": empty_pg.url.render_as_string(hide_password=False)}
    for _ in range(2):
        done = subprocess.run(
            [sys.executable, "-m", "worker.cli", "db", "upgrade"], env=env, cwd=ROOT,
            capture_output=True, text=True, check=False,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
    _assert_contract_tables(empty_pg)
    head = current_revision(empty_pg)
    upgrade(empty_pg)
    assert current_revision(empty_pg) == head


def test_cli_upgrade_on_sqlite_twice(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "BROKER_URL")}
    env["BADGES_DATA_DIR"] = str(tmp_path / "data")
    for _ in range(2):
        done = subprocess.run(
            [sys.executable, "-m", "worker.cli", "db", "upgrade"], env=env, cwd=tmp_path,
            capture_output=True, text=True, check=False,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
    engine = make_engine(f"sqlite:///{tmp_path / 'data' / 'badges.sqlite3'}")
    _assert_contract_tables(engine)
    engine.dispose()


@pytest.mark.parametrize("dialect", ["postgresql", "sqlite"])
def test_table_metadata_matches_the_migrations(
    dialect: str, empty_pg: Engine, tmp_path: Path
) -> None:
    engine = (
        empty_pg if dialect == "postgresql" else make_engine(f"sqlite:///{tmp_path / 'm.sqlite3'}")
    )
    upgrade(engine)
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), metadata)
    assert diff == []


def test_dedup_migration_keeps_the_earliest_and_audits_the_rest(
    empty_pg: Engine, caplog: pytest.LogCaptureFixture
) -> None:
    upgrade(empty_pg, "0001")
    org, mentor, definition = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    other_mentor = uuid.uuid4()
    t0 = datetime(2026, 1, 10, 12, tzinfo=UTC)
    earliest = uuid.uuid4()
    rows = [
        (uuid.uuid4(), mentor, t0 + timedelta(days=2)),
        (earliest, mentor, t0),
        (uuid.uuid4(), mentor, t0 + timedelta(days=1)),
        (uuid.uuid4(), other_mentor, t0 + timedelta(days=5)),
    ]
    with empty_pg.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO badge_definitions (id, organisation_id, code, name, criteria, updated_at) "
                "VALUES (:id, :org, 'ten', 'Ten', '{}', now())"
            ),
            {"id": definition, "org": org},
        )
        for earned_id, who, at in rows:
            conn.execute(
                text(
                    "INSERT INTO earned_badges (id, badge_definition_id, peer_mentor_id, organisation_id, earned_at) "
                    "VALUES (:id, :d, :m, :o, :at)"
                ),
                {"id": earned_id, "d": definition, "m": who, "o": org, "at": at},
            )
    with caplog.at_level(logging.INFO, logger="alembic.runtime.migration"):
        upgrade(empty_pg)
    assert "removed 2 duplicate award(s)" in caplog.text
    with empty_pg.connect() as conn:
        kept = conn.execute(
            text("SELECT id, peer_mentor_id FROM earned_badges ORDER BY earned_at")
        ).all()
        audit = conn.execute(
            text("SELECT action, reason, earned_at FROM badge_audit ORDER BY earned_at")
        ).all()
    assert [r.id for r in kept if r.peer_mentor_id == mentor] == [earliest]
    assert len(kept) == 2
    assert [(a.action, a.reason) for a in audit] == [("deduplicated", "deduplicated")] * 2
    assert [a.earned_at for a in audit] == [t0 + timedelta(days=1), t0 + timedelta(days=2)]
    # the constraint now holds
    with pytest.raises(Exception, match="uq_earned_badges"), empty_pg.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO earned_badges (id, badge_definition_id, peer_mentor_id, organisation_id, earned_at) "
                "VALUES (:id, :d, :m, :o, now())"
            ),
            {"id": uuid.uuid4(), "d": definition, "m": mentor, "o": org},
        )
