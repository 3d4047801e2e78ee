"""``badges demo``: the whole pipeline on real processes with sample data.

Creates a sample organisation (fresh ids each run), applies its badges, tiers
and award period, publishes a year of activity through the configured broker,
runs a real Celery worker until every event is handled, and prints a summary.
Runs on the embedded default, or on PostgreSQL + Redis when configured.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from uuid import UUID, uuid4

from sqlalchemy import func, select
from tqdm import tqdm

from schema.tables import processed_events, quarantined_events
from worker.badges.awards import earned_by_mentor
from worker.cli.common import EXIT_OK, CliError, print_json
from worker.cli.demo_data import DemoData, generate, sample_configuration
from worker.configuration.apply import apply_configuration
from worker.configuration.schema import validate_configuration
from worker.core.clock import SystemClock
from worker.core.settings import get_settings
from worker.db.engine import get_engine
from worker.db.unit_of_work import unit_of_work
from worker.model.criteria import MentorStats
from worker.model.streaks import Period
from worker.stats.counts import load_snapshots

WORKER_QUEUES = "activity_events,notifications,maintenance"
WEEKLY_ALL: tuple[Period, frozenset[str]] = (Period.WEEK, frozenset())


def register(commands: Any) -> None:
    demo = commands.add_parser("demo", help="run the whole pipeline on sample data")
    demo.add_argument("--mentors", type=int, default=36, help="how many sample mentors")
    demo.add_argument("--seed", type=int, default=7, help="random seed of the sample data")
    demo.add_argument("--timeout", type=float, default=120.0, help="seconds to wait for the worker")
    demo.add_argument("--json", action="store_true", help="print the summary as JSON")
    demo.set_defaults(handler=run_demo_command)


@dataclass
class DemoResult:
    organisation_id: UUID
    messages_published: int
    events_processed: int
    duplicates_ignored: int
    quarantined: int
    badges_by_mentor: dict[UUID, list[str]]
    longest_weekly_streak: dict[UUID, int]
    seconds: float

    def as_json(self) -> dict[str, Any]:
        return {
            "organisation_id": str(self.organisation_id),
            "messages_published": self.messages_published,
            "events_processed": self.events_processed,
            "duplicates_ignored": self.duplicates_ignored,
            "quarantined": self.quarantined,
            "seconds": round(self.seconds, 2),
            "mentors": [
                {
                    "peer_mentor_id": str(m),
                    "badges": codes,
                    "longest_weekly_streak": self.longest_weekly_streak.get(m, 0),
                }
                for m, codes in self.badges_by_mentor.items()
            ],
        }


def run_demo(
    *, mentors: int = 36, seed: int = 7, timeout: float = 120.0, progress: bool = True
) -> tuple[DemoResult, DemoData, dict[str, Any]]:
    """Run the demo end to end; returns the result, the sample data and its configuration."""
    from schema.migrate import upgrade  # alembic: only the commands that migrate load it

    started = time.monotonic()
    engine = get_engine()
    upgrade(engine)
    org = uuid4()
    year = datetime.now(UTC).year
    config_data = sample_configuration(org, year)
    with unit_of_work() as conn:
        apply_configuration(conn, validate_configuration(config_data), SystemClock())
        quarantine_before = _quarantined(conn)
    data = generate(org, mentors=mentors, year=year, seed=seed)

    from worker.tasks.publishing import publish

    publish(data.events, progress=progress)
    unique_valid = {
        e["event_id"] for e in data.events if e.get("event_id") and e.get("schema_version") == 1
    }
    unique_valid = {e for e in unique_valid if _is_valid_id(data, e)}
    expected = len(unique_valid) + data.invalid_events

    worker = _start_worker()
    try:
        _wait_until_handled(unique_valid, quarantine_before, expected, timeout, progress, worker)
    finally:
        _stop_worker(worker)

    with unit_of_work() as conn:
        processed = _processed(conn, unique_valid)
        quarantined = _quarantined(conn) - quarantine_before
        badges = {m: [b.code for b in earned_by_mentor(conn, m)] for m in data.mentors}
        snapshots: dict[UUID, MentorStats] = load_snapshots(conn, data.mentors, [WEEKLY_ALL])
    valid_messages = sum(1 for e in data.events if e.get("event_id") in unique_valid)
    result = DemoResult(
        organisation_id=org,
        messages_published=len(data.events),
        events_processed=processed,
        duplicates_ignored=valid_messages - processed,
        quarantined=quarantined,
        badges_by_mentor=badges,
        longest_weekly_streak={m: s.streak(WEEKLY_ALL) for m, s in snapshots.items()},
        seconds=time.monotonic() - started,
    )
    return result, data, config_data


def _is_valid_id(data: DemoData, event_id: str) -> bool:
    from worker.model.events import InvalidEvent, parse_event

    for event in data.events:
        if event.get("event_id") == event_id:
            try:
                parse_event(event)
            except InvalidEvent:
                return False
            return True
    return False


def _processed(conn: Any, event_ids: set[str]) -> int:
    ids = [UUID(e) for e in event_ids]
    total = 0
    for start in range(0, len(ids), 500):
        total += conn.execute(
            select(func.count())
            .select_from(processed_events)
            .where(processed_events.c.event_id.in_(ids[start : start + 500]))
        ).scalar_one()
    return int(total)


def _quarantined(conn: Any) -> int:
    return int(conn.execute(select(func.count()).select_from(quarantined_events)).scalar_one())


def _start_worker() -> subprocess.Popen[bytes]:
    settings = get_settings()
    log_path = Path(settings.badges_data_dir) / "demo-worker.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    # SQLite has one writer at a time: one worker process; PostgreSQL gets two.
    pool = ["--pool", "solo"] if settings.database_url is None else ["--concurrency", "2"]
    command = [
        sys.executable, "-m", "celery", "-A", "worker", "worker",
        "-Q", WORKER_QUEUES, "--loglevel", "WARNING",
        "--without-gossip", "--without-mingle", "--without-heartbeat",
        "--hostname", f"demo-{os.getpid()}@%h", *pool,
    ]  # fmt: skip
    with log_path.open("ab") as log:
        return subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)


def _wait_until_handled(
    event_ids: set[str],
    quarantine_before: int,
    expected: int,
    timeout: float,
    progress: bool,
    worker: subprocess.Popen[bytes],
) -> None:
    deadline = time.monotonic() + timeout
    with tqdm(total=expected, disable=not progress, unit="event", desc="processing") as bar:
        while True:
            with unit_of_work() as conn:
                done = _processed(conn, event_ids) + _quarantined(conn) - quarantine_before
            bar.update(done - bar.n)
            if done >= expected:
                return
            if worker.poll() is not None:
                raise CliError(f"the worker exited early (code {worker.returncode}); see its log")
            if time.monotonic() > deadline:
                raise CliError(
                    f"timed out after {timeout:.0f}s with {done}/{expected} events handled"
                )
            time.sleep(0.3)


def _stop_worker(worker: subprocess.Popen[bytes]) -> None:
    if worker.poll() is None:
        worker.send_signal(signal.SIGTERM)  # warm shutdown: finishes the task in hand
        try:
            worker.wait(timeout=30)
        except subprocess.TimeoutExpired:
            worker.kill()
            worker.wait()


def run_demo_command(args: argparse.Namespace) -> int:
    progress = not args.json and sys.stderr.isatty()
    if not get_settings().embedded:
        print(
            "badges: warning: the demo writes a sample organisation, its badges and a year of "
            "activity into the configured database (it stays there)",
            file=sys.stderr,
        )
    result, _, _ = run_demo(
        mentors=args.mentors, seed=args.seed, timeout=args.timeout, progress=progress
    )
    if args.json:
        print_json(result.as_json())
        return EXIT_OK
    print_summary(result)
    return EXIT_OK


def print_summary(result: DemoResult) -> None:
    settings = get_settings()
    where = (
        "embedded default (SQLite + filesystem broker)"
        if settings.embedded
        else "configured servers"
    )
    print(f"\nDemo organisation {result.organisation_id} on the {where}")
    print(
        f"  messages published: {result.messages_published}   events processed: "
        f"{result.events_processed}   duplicates ignored: {result.duplicates_ignored}   "
        f"quarantined: {result.quarantined}   time: {result.seconds:.1f}s"
    )
    awarded = Counter(code for codes in result.badges_by_mentor.values() for code in codes)
    print("\nBadges awarded:")
    for code, count in sorted(awarded.items(), key=lambda item: (-item[1], item[0])):
        print(f"  {code:<18} {count:>3} mentor(s)")
    print("\nMentors (badges, longest weekly streak):")
    ranked = sorted(
        result.badges_by_mentor.items(),
        key=lambda item: (-len(item[1]), -result.longest_weekly_streak.get(item[0], 0)),
    )
    for mentor, codes in ranked:
        streak = result.longest_weekly_streak.get(mentor, 0)
        print(
            f"  {mentor}  streak {streak:>2} weeks  {len(codes)} badge(s): {', '.join(codes) or '-'}"
        )
    if ranked:
        year = datetime.now(UTC).year
        print(
            f"\nTry next:  badges earned --mentor {ranked[0][0]}\n"
            f"           badges summary --mentor {ranked[0][0]} --year {year}"
        )
    if not settings.embedded:
        print(
            f"\nNote: sample organisation {result.organisation_id} stays in the configured database."
        )
