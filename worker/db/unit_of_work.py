"""One transaction per unit of work, and what must happen once it committed.

Services receive a SQLAlchemy Core ``Connection`` that is already inside a
transaction; they execute and never commit.  :func:`unit_of_work` commits on
success, rolls back on error and always releases the connection.

Side effects that must not happen for a transaction that rolled back (sending
the delivery tasks of freshly written outbox rows) are registered with
:func:`after_commit` while the unit of work runs; :func:`unit_of_work` runs
them once the commit succeeded, each action once with everything registered
for it.  If the process dies in between, nothing is lost: what was registered
is in the database (the outbox), and its relay finishes the job.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar
from weakref import WeakKeyDictionary

from sqlalchemy import Connection, Engine

from worker.db.engine import get_engine

log = logging.getLogger(__name__)

T = TypeVar("T")
Action = Callable[[list[Any]], None]

# Keyed by the Connection object (one per checkout), not by ``Connection.info``,
# which belongs to the pooled DBAPI connection and would outlive the checkout.
_pending: WeakKeyDictionary[Connection, dict[Action, list[Any]]] = WeakKeyDictionary()


def after_commit(conn: Connection, action: Callable[[list[T]], None], items: Iterable[T]) -> None:
    """Call ``action(items)`` once the unit of work that owns ``conn`` has committed.

    Items registered for the same action are collected and passed in one
    call, in registration order.  Nothing runs if the unit of work rolls back,
    nor for a transaction that is not a :func:`unit_of_work` (e.g. a test's
    rolled-back connection).
    """
    items = list(items)
    if items:
        _pending.setdefault(conn, {}).setdefault(action, []).extend(items)


@contextmanager
def unit_of_work(
    engine: Engine | None = None, *, isolation_level: str | None = None
) -> Iterator[Connection]:
    """One transaction: commit on success, roll back on any error, then the after-commit actions.

    ``isolation_level`` (e.g. ``"REPEATABLE READ"``, PostgreSQL) applies to
    this transaction only.
    """
    with (engine or get_engine()).connect() as conn:
        if isolation_level is not None:
            conn = conn.execution_options(isolation_level=isolation_level)
        try:
            with conn.begin():
                yield conn
        finally:
            pending = _pending.pop(conn, {})
    # Only reached when the commit succeeded.
    for action, items in pending.items():
        try:
            action(items)
        except Exception:  # committed already: never turn success into failure
            log.exception("after-commit action %s failed", getattr(action, "__name__", action))
