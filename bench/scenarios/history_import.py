"""``import``: ``badges import activities FILE`` with full evaluation.

A JSON-lines file of historical activities (the import format: one
``activity`` object per line) is written first (not timed); then the real
command runs as a subprocess against the scenario's database, with the
default badge set (thresholds, week and month streaks, courses, a
combination).  ``seconds`` is the command's wall time: validating and
staging, loading, aggregation, evaluation and awards (with the dispatch of
their in-app notifications).

``floor_seconds`` is what this machine's PostgreSQL needs for the bare
write: the ledger rows the import produced, copied out (not timed) and
``COPY``-ed into a table with the ledger's columns and no key, index or
trigger, in the same run.  ``floor_ratio`` = ``seconds`` / ``floor_seconds``:
how far the whole import (parsing, staging, aggregation, evaluation, awards)
is from writing its ledger rows at the floor.

``indexed_floor_seconds`` is the same for everything the import must write:
every row it left in the tables it writes (ledger, stats, mentors, awards,
outbox), ``COPY``-ed one table after the other into copies of those tables
*with* their keys and indexes.  ``indexed_floor_ratio`` = that ÷
``floor_seconds``: the least ``floor_ratio`` an import on one connection
could reach with this schema, before parsing a single line.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from datetime import date
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, text

from bench.data import history_activities, mentor_id
from bench.database import prepare
from bench.progress import say
from bench.resources import throwaway_environment
from bench.workers import ROOT

FULL = {"activities": 1_000_000, "mentors": 10_000}
QUICK = {"activities": 100_000, "mentors": 1_000}
FIRST_DAY, LAST_DAY = date(2023, 1, 1), date(2026, 11, 15)
#: The tables an import writes (its staging tables are temporary and not counted).
WRITTEN_TABLES = (
    "activity_ledger",
    "mentors",
    "mentor_activity_counts",
    "daily_activity_counts",
    "period_activity_counts",
    "completed_courses",
    "earned_badges",
    "notification_outbox",
)


def write_file(path: Path, activities: int, mentors: int) -> int:
    """Write the import file; returns its size in bytes."""
    from worker.ingestion.staging import activity_line

    ids = [mentor_id(n, run="import") for n in range(mentors)]
    with path.open("w") as handle:
        for activity in history_activities(
            activities, mentors=ids, first=FIRST_DAY, last=LAST_DAY, seed=7
        ):
            handle.write(activity_line(activity) + "\n")
    return path.stat().st_size


def badges_command() -> list[str]:
    """The ``badges`` console script of this environment (or its module)."""
    script = Path(sys.executable).with_name("badges")
    return [str(script)] if script.exists() else [sys.executable, "-m", "worker.cli"]


def run(*, quick: bool) -> dict[str, Any]:
    """Run the scenario on its own database."""
    size = QUICK if quick else FULL
    with (
        throwaway_environment() as env,
        tempfile.TemporaryDirectory(prefix="bench-import-") as folder,
    ):
        engine = prepare(env.database_url)
        try:
            path = Path(folder) / "activities.jsonl"
            say(f"writing {size['activities']} activities for {size['mentors']} mentors")
            file_bytes = write_file(path, size["activities"], size["mentors"])
            command = [*badges_command(), "import", "activities", str(path)]
            say("running: badges import activities FILE")
            started = time.monotonic()
            done = subprocess.run(
                command, cwd=ROOT, env=env.process_environment(), capture_output=True, text=True
            )
            seconds = time.monotonic() - started
            if done.returncode != 0:
                raise RuntimeError(f"import failed ({done.returncode}):\n{done.stderr[-3000:]}")
            say(done.stdout.strip())
            with engine.connect() as conn:
                ledger = int(
                    conn.execute(text("SELECT count(*) FROM activity_ledger")).scalar_one()
                )
                awarded = int(conn.execute(text("SELECT count(*) FROM earned_badges")).scalar_one())
            say("copying the ledger rows into a bare table (the floor)")
            floor = copy_floor(engine, ["activity_ledger"], indexed=False)
            say("copying every written row into indexed copies of its tables")
            indexed_floor = copy_floor(engine, WRITTEN_TABLES, indexed=True)
        finally:
            engine.dispose()
    if ledger != size["activities"]:
        raise RuntimeError(f"ledger holds {ledger} rows, expected {size['activities']}")
    return {
        "activities": size["activities"],
        "seconds": round(seconds, 1),
        "activities_per_s": round(size["activities"] / seconds),
        "mentors": size["mentors"],
        "floor_seconds": round(floor, 2),
        "floor_ratio": round(seconds / floor, 1),
        "indexed_floor_seconds": round(indexed_floor, 2),
        "indexed_floor_ratio": round(indexed_floor / floor, 1),
        "badges_awarded": awarded,
        "file_mb": round(file_bytes / 2**20, 1),
    }


def copy_floor(engine: Engine, tables: Sequence[str], *, indexed: bool) -> float:
    """Seconds to ``COPY`` the rows of ``tables`` into copies of them (see the module docstring).

    The copies are bare (``indexed=False``: the columns only) or carry the
    tables' keys, indexes, defaults and checks (``LIKE … INCLUDING ALL``).
    The rows are read out first and only the writes are timed.
    """
    like = "INCLUDING ALL" if indexed else ""
    seconds = 0.0
    raw = engine.raw_connection()
    try:
        conn = raw.driver_connection
        assert conn is not None
        with conn.cursor() as cur:
            for table in tables:
                buffer = bytearray()
                with cur.copy(f"COPY {table} TO STDOUT") as out:
                    for block in out:
                        buffer += block
                cur.execute(f"CREATE TABLE floor_copy (LIKE {table} {like})")
                conn.commit()
                started = time.monotonic()
                with cur.copy("COPY floor_copy FROM STDIN") as into:
                    for at in range(0, len(buffer), 1 << 20):
                        into.write(buffer[at : at + (1 << 20)])
                conn.commit()
                seconds += time.monotonic() - started
                cur.execute("DROP TABLE floor_copy")
                conn.commit()
    finally:
        raw.close()
    return seconds
