"""The last successful run of each periodic job, kept in ``periodic_job_runs``.

Beat and the workers may run on different hosts and restart at any time;
the database is the one place every run reaches, so the web ``/metrics``
reads the last success from there (``badges_job_last_success_timestamp_seconds``)
and an alert fires when a job has not succeeded for a few intervals.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Connection, select

from schema.tables import periodic_job_runs
from worker.db.sql import insert_for

#: The periodic jobs (beat schedule) by the name they are recorded under.
JOBS = ("reevaluate_tiers", "relay_outbox", "reconcile")


def record_success(conn: Connection, job: str, *, finished_at: datetime, duration_s: float) -> None:
    stmt = insert_for(conn, periodic_job_runs).values(
        job=job, last_success_at=finished_at, last_duration_s=duration_s
    )
    conn.execute(
        stmt.on_conflict_do_update(
            index_elements=["job"],
            set_={"last_success_at": finished_at, "last_duration_s": duration_s},
        )
    )


def last_successes(conn: Connection) -> dict[str, datetime]:
    rows = conn.execute(select(periodic_job_runs.c.job, periodic_job_runs.c.last_success_at))
    return {job: at for job, at in rows}
