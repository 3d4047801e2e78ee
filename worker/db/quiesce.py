"""Wait until the transactions running right now have ended (PostgreSQL).

A job that must see everything written under an old configuration (the
retroactive badge evaluation after a configuration change) first waits for
every transaction of this database that is in progress when it starts:
afterwards, each transaction that could still have read the old
configuration has committed or rolled back, and any later one reads the new
one.  This is what ``CREATE INDEX CONCURRENTLY`` does internally, from SQL:
``pg_stat_activity`` lists each session's current transaction by its start
time, and a ``(pid, xact_start)`` pair that is gone never comes back.
"""

from __future__ import annotations

import logging
import time

from sqlalchemy import Engine, text

log = logging.getLogger(__name__)

_RUNNING = text(
    """
    SELECT pid, xact_start FROM pg_stat_activity
    WHERE datname = current_database() AND pid <> pg_backend_pid()
      AND backend_type = 'client backend' AND xact_start IS NOT NULL
    """
)


def wait_for_running_transactions(
    engine: Engine, *, timeout: float = 60.0, poll: float = 0.05
) -> bool:
    """Block until the transactions in progress now have all ended; False on timeout.

    SQLite needs no wait: each writer holds the database's single write lock
    for its whole transaction, so none is half-way through when we start.
    """
    if engine.dialect.name != "postgresql":
        return True
    deadline = time.monotonic() + timeout
    with engine.connect() as conn:
        # pg_stat_activity is read once per transaction: a new one per poll.
        pending = {(row[0], row[1]) for row in conn.execute(_RUNNING)}
        conn.rollback()
        while pending:
            if time.monotonic() > deadline:
                log.warning(
                    "%d transaction(s) still running after %.0fs (pids %s); going ahead",
                    len(pending),
                    timeout,
                    sorted(pid for pid, _ in pending),
                )
                return False
            time.sleep(poll)
            pending &= {(row[0], row[1]) for row in conn.execute(_RUNNING)}
            conn.rollback()
    return True
