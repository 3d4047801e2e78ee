"""Engines: one per database URL and process, with the per-dialect settings the worker relies on."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event

from worker.core.settings import get_settings


def is_postgres(conn: Connection | Engine) -> bool:
    return conn.dialect.name == "postgresql"


def make_engine(url: str, **kwargs: Any) -> Engine:
    """An engine for ``url`` with the per-dialect settings the worker relies on."""
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"timeout": 30}, **kwargs)
        _configure_sqlite(engine)
        return engine
    # Multi-row writes are executed as one cached statement over many
    # parameter sets; SQLAlchemy packs them into multi-row VALUES pages of up
    # to this many rows (and at most ~32k bind parameters per page).
    kwargs.setdefault("insertmanyvalues_page_size", 5000)
    return create_engine(url, pool_pre_ping=True, **kwargs)


def _configure_sqlite(engine: Engine) -> None:
    # pysqlite's own transaction handling defers BEGIN; take control so that a
    # unit of work starts with BEGIN IMMEDIATE and holds SQLite's single write
    # lock for its whole read-modify-write (SQLite has no advisory locks).
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE")


_engines: dict[str, Engine] = {}


def get_engine() -> Engine:
    """The process-wide engine for the configured database."""
    settings = get_settings()
    settings.ensure_data_dir()
    url = settings.effective_database_url
    if url not in _engines:
        _engines[url] = make_engine(url)
    return _engines[url]


def dispose_engines(*, close: bool = True) -> None:
    """Drop pooled connections.

    After a fork pass ``close=False``: the child must not use the parent's
    sockets, nor close them under the parent's feet.
    """
    for engine in _engines.values():
        engine.dispose(close=close)
    _engines.clear()
