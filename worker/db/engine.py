"""Engines: one per database URL and process, with the per-dialect settings the worker relies on."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event, make_url

from worker.core.settings import get_settings


def is_postgres(conn: Connection | Engine) -> bool:
    return conn.dialect.name == "postgresql"


def make_engine(url: str, *, transaction_pooler: bool | None = None, **kwargs: Any) -> Engine:
    """An engine for ``url`` with the per-dialect settings the worker relies on.

    ``transaction_pooler``: whether ``url`` goes through a transaction-mode
    pooler; None decides by :func:`behind_transaction_pooler`.
    """
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"timeout": 30}, **kwargs)
        _configure_sqlite(engine)
        return engine
    # Multi-row writes are executed as one cached statement over many
    # parameter sets; SQLAlchemy packs them into multi-row VALUES pages of up
    # to this many rows (and at most ~32k bind parameters per page).
    kwargs.setdefault("insertmanyvalues_page_size", 5000)
    pooled = behind_transaction_pooler(url) if transaction_pooler is None else transaction_pooler
    if pooled:
        # psycopg prepares a statement on the server after a few executions;
        # behind a transaction pooler the next transaction may run on another
        # server connection, where that statement does not exist.
        kwargs["connect_args"] = {**kwargs.get("connect_args", {}), "prepare_threshold": None}
    return create_engine(url, pool_pre_ping=True, **kwargs)


#: The port of Supabase's transaction-mode pooler (Supavisor).
TRANSACTION_POOLER_PORT = 6543


def behind_transaction_pooler(url: str) -> bool:
    """Does ``url`` reach PostgreSQL through a transaction-mode pooler?

    ``DATABASE_POOLER`` says so (``transaction``) or denies it (``session``,
    ``none``); unset, port 6543 (Supabase's pooler) counts as one.
    """
    mode = get_settings().database_pooler
    if mode is not None:
        return mode == "transaction"
    return make_url(url).port == TRANSACTION_POOLER_PORT


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
