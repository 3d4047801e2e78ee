"""Advisory locks: per mentor (ingestion, evaluation) and per periodic job.

All are transaction-scoped (``pg_advisory_xact_lock``), so they end with the
unit of work and survive a transaction-mode connection pooler.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from uuid import UUID

from sqlalchemy import Connection, text

from worker.db.engine import is_postgres


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


def lock_job(conn: Connection, job_name: str) -> None:
    """Wait for a periodic job's lock (see :func:`try_lock_job`) until the transaction ends."""
    if is_postgres(conn):
        conn.execute(
            text("SELECT pg_advisory_xact_lock(:key)"), {"key": lock_key(f"job:{job_name}")}
        )


def try_lock_mentors(conn: Connection, mentor_ids: Iterable[UUID]) -> set[UUID]:
    """Take whichever of these mentors' locks are free, without waiting; return those mentors.

    One statement for all keys, in sorted order (the same order
    :func:`lock_mentors` waits in).  A try-lock never waits, so it cannot take
    part in a deadlock; the locks taken last until the transaction ends.  Two
    mentors whose ids share a key are acquired or refused together.  On
    SQLite every mentor is acquired (the database is write-locked already).
    """
    wanted = set(mentor_ids)
    if not is_postgres(conn) or not wanted:
        return wanted
    by_key: dict[int, set[UUID]] = {}
    for mentor in wanted:
        by_key.setdefault(lock_key(mentor), set()).add(mentor)
    rows = conn.execute(
        text(
            "SELECT k, pg_try_advisory_xact_lock(k) FROM unnest(CAST(:keys AS bigint[])) AS k"
            " ORDER BY k"
        ),
        {"keys": sorted(by_key)},
    )
    return {mentor for key, taken in rows if taken for mentor in by_key[key]}
