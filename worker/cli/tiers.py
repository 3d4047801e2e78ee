"""``badges tiers evaluate``, ``badges summary``, ``badges reconcile``."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from worker.cli.common import EXIT_ERROR, EXIT_OK, CliError, invalid, parse_uuid, print_json
from worker.core.clock import SystemClock
from worker.core.settings import get_settings
from worker.db.engine import get_engine
from worker.db.unit_of_work import unit_of_work
from worker.ingestion.reconcile import TABLE_NAMES, ProgressCallback, ReconcileReport, run_reconcile
from worker.tiers.summary import MentorNotFound, YearSummary, year_summary


def register(commands: Any) -> None:
    tiers = commands.add_parser("tiers", help="recognition tiers")
    tier_commands = tiers.add_subparsers(dest="tiers_command", metavar="ACTION", required=True)
    evaluate = tier_commands.add_parser(
        "evaluate", help="re-evaluate tiers in the currently active award periods now"
    )
    evaluate.add_argument("--org", help="only this organisation id")
    evaluate.add_argument(
        "--full", action="store_true", help="every mentor, not only those changed since last run"
    )
    evaluate.set_defaults(handler=tiers_evaluate)

    summary = commands.add_parser("summary", help="a mentor's year (Ditt likepersonsår)")
    summary.add_argument("--mentor", required=True, help="peer mentor id")
    summary.add_argument("--year", required=True, type=_year, help="calendar year, e.g. 2026")
    summary.add_argument("--json", action="store_true", help="print JSON")
    summary.set_defaults(handler=show_summary)

    reconcile = commands.add_parser(
        "reconcile", help="recompute stats from the ledger, repair and report drift"
    )
    reconcile.add_argument("--dry-run", action="store_true", help="report drift, repair nothing")
    reconcile.set_defaults(handler=run_reconcile_command)


def _year(value: str) -> int:
    try:
        year = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a year") from None
    if not 1900 <= year <= 9999:
        raise argparse.ArgumentTypeError(f"{value!r} is not a year between 1900 and 9999")
    return year


def tiers_evaluate(args: argparse.Namespace) -> int:
    from worker.tasks.periodic import run_tier_reevaluation

    org = parse_uuid(args.org, "--org") if args.org else None
    result = run_tier_reevaluation(organisation_id=org, full=args.full)
    if result is None:
        raise CliError("another tier re-evaluation is running; try again when it has finished")
    if not result.periods:
        print("no award period is active today; nothing evaluated")
    for run in result.periods:
        p = run.period
        print(
            f"{p.name} ({p.start_date}..{p.end_date}, org {p.organisation_id}): "
            f"{'full' if run.full else 'incremental'}, {run.mentors_evaluated} mentor(s) "
            f"evaluated, {len(run.promotions)} promotion(s)"
        )
    if result.awarded:
        print(f"{len(result.awarded)} tier badge(s) awarded")
    return EXIT_OK


def show_summary(args: argparse.Namespace) -> int:
    mentor = parse_uuid(args.mentor, "--mentor")
    try:
        with unit_of_work() as conn:
            summary = year_summary(conn, mentor, args.year, clock=SystemClock())
    except MentorNotFound as exc:
        raise invalid(str(exc)) from None
    if args.json:
        print_json(summary.model_dump(mode="json"))
    else:
        print_summary(summary)
    return EXIT_OK


def print_summary(s: YearSummary) -> None:
    print(f"Peer-mentor year {s.year} for {s.peer_mentor_id}")
    print(f"  activities: {s.total_activities}")
    for kind, n in s.activity_counts.items():
        print(f"    {kind:<24} {n}")
    print(f"  longest weekly streak: {s.longest_weekly_streak} week(s)")
    period = f" in {s.award_period.name}" if s.award_period else ""
    print(f"  tier{period}: {s.tier or 'none yet'}")
    if s.next_tier and s.eligibility:
        e = s.eligibility
        print(
            f"  towards {s.next_tier}: {s.progress_to_next_tier:.0%} "
            f"(activities {'met' if e.assignments_met else 'not met'}, "
            f"streak {'met' if e.streak_met else 'not met'})"
        )
        if s.progress_to_next_tier >= 1:
            print(
                "  (tiers are assigned by the periodic re-evaluation, every "
                f"{get_settings().tier_reevaluation_interval_s / 60:.0f} min; "
                "`badges tiers evaluate` runs it now)"
            )
    print(f"  badges earned in {s.year}: {len(s.badges)}")
    for b in s.badges:
        print(f"    {b.earned_at:%Y-%m-%d}  {b.code:<24} {b.name}")
    for p in s.badge_progress:
        print(f"    next: {p.code:<24} {p.current}/{p.target} {p.unit}")


def run_reconcile_command(args: argparse.Namespace) -> int:
    report = _reconcile_with_progress(repair=not args.dry_run, show=sys.stderr.isatty())
    if report.skipped:
        raise CliError("another reconcile is running; try again when it has finished")
    for table, n in report.drifted.items():
        if n:
            print(f"  {table}: {n} drifted row(s)")
    verb = "found and repaired" if report.repaired else "found (dry run, nothing repaired)"
    print(f"reconcile: {verb} {report.total} drifted row(s)")
    return EXIT_OK if report.repaired or report.total == 0 else EXIT_ERROR


def _reconcile_with_progress(*, repair: bool, show: bool) -> ReconcileReport:
    from tqdm import tqdm

    with tqdm(total=len(TABLE_NAMES), disable=not show, unit="table", desc="reconcile") as bar:

        def step(table: str, drifted: int) -> None:
            if bar.n >= len(TABLE_NAMES):  # a retry after a concurrent write starts over
                bar.reset()
            bar.set_postfix_str(f"{table}: {drifted} drifted")
            bar.update(1)

        callback: ProgressCallback = step
        return run_reconcile(get_engine(), clock=SystemClock(), repair=repair, on_progress=callback)
