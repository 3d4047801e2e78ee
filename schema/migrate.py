"""Run Alembic migrations programmatically (used by ``badges db upgrade`` and tests)."""

from __future__ import annotations

import logging
from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, inspect

MIGRATIONS_DIR = Path(__file__).parent / "migrations"
HEAD = "head"
log = logging.getLogger(__name__)


def alembic_config(url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    # ConfigParser interpolation would choke on '%' in URLs (escaped passwords).
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


def upgrade(engine: Engine, revision: str = HEAD) -> None:
    """Migrate ``engine``'s database to ``revision``; a no-op when already there."""
    config = alembic_config(engine.url.render_as_string(hide_password=False))
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, revision)


def downgrade(engine: Engine, revision: str) -> None:
    config = alembic_config(engine.url.render_as_string(hide_password=False))
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.downgrade(config, revision)


def current_revision(engine: Engine) -> str | None:
    if not inspect(engine).has_table("alembic_version"):
        return None
    with engine.connect() as conn:
        from sqlalchemy import text

        return conn.execute(text("SELECT version_num FROM alembic_version")).scalar()


def pending_revisions(engine: Engine, revision: str = HEAD) -> list[tuple[str, str]]:
    """``(revision, first docstring line)`` of each migration ``upgrade`` would apply, in order."""
    from alembic.script import ScriptDirectory

    script = ScriptDirectory.from_config(
        alembic_config(engine.url.render_as_string(hide_password=False))
    )
    current = current_revision(engine)
    steps = script.iterate_revisions(revision, current or "base")
    return [(s.revision, (s.doc or "").strip().splitlines()[0]) for s in reversed(list(steps))]
