"""Engine and unit-of-work transactions.

Services receive a SQLAlchemy Core ``Connection`` that is already inside a
transaction; they execute and never commit.  :func:`unit_of_work` commits on
success, rolls back on error and always releases the connection.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any
from uuid import UUID

from sqlalchemy import Connection, Engine, create_engine, event, make_url, text

from worker.settings import get_settings


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


@contextmanager
def unit_of_work(engine: Engine | None = None) -> Iterator[Connection]:
    """One transaction: commit on success, roll back on any error."""
    with (engine or get_engine()).begin() as conn:
        yield conn


def lock_key(name: str | UUID) -> int:
    """A stable signed 64-bit advisory-lock key for a mentor id or a job name."""
    digest = hashlib.blake2b(str(name).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


def lock_mentors(conn: Connection, mentor_ids: Iterable[UUID]) -> None:
    """Serialise work per mentor until the transaction ends.

    Keys are taken in sorted order so two units of work touching overlapping
    mentors can never deadlock.  On SQLite the whole database is already
    write-locked by ``BEGIN IMMEDIATE``.
    """
    if not is_postgres(conn):
        return
    keys = sorted({lock_key(m) for m in mentor_ids})
    if not keys:
        return
    # One round trip for all keys.  With ORDER BY, PostgreSQL evaluates the
    # volatile lock function after sorting, so keys are taken in this order.
    conn.execute(
        text(
            "SELECT pg_advisory_xact_lock(k) FROM unnest(CAST(:keys AS bigint[])) AS k ORDER BY k"
        ),
        {"keys": keys},
    )


def try_lock_job(conn: Connection, job_name: str) -> bool:
    """Take a transaction-scoped lock for a periodic job; False if another run holds it."""
    if not is_postgres(conn):
        return True
    return bool(
        conn.execute(
            text("SELECT pg_try_advisory_xact_lock(:key)"), {"key": lock_key(f"job:{job_name}")}
        ).scalar()
    )
