"""``badges db upgrade``, ``badges definitions apply``, ``badges schema events``."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tqdm import tqdm

from worker.cli.common import EXIT_OK, invalid, print_json
from worker.configuration.schema import ConfigurationError, load_configuration_file
from worker.core.clock import SystemClock
from worker.db.engine import get_engine
from worker.model.events import event_json_schema

if TYPE_CHECKING:
    from worker.configuration.followup import ApplyOutcome

# The migration tooling (alembic) and the configuration follow-up (retroactive
# evaluation, tier runs) are imported by the commands that use them: every
# other command, a history import for one, starts faster without them.

#: Organisations with at least this many mentors get a progress bar (stderr).
PROGRESS_MENTORS = 10_000


def register(commands: Any) -> None:
    db = commands.add_parser("db", help="database schema")
    db_commands = db.add_subparsers(dest="db_command", metavar="ACTION", required=True)
    up = db_commands.add_parser("upgrade", help="apply migrations (a no-op when up to date)")
    up.set_defaults(handler=db_upgrade)

    definitions = commands.add_parser("definitions", help="badge definitions, tiers, award periods")
    def_commands = definitions.add_subparsers(
        dest="definitions_command", metavar="ACTION", required=True
    )
    apply = def_commands.add_parser(
        "apply", help="validate and apply a YAML or JSON file (all or nothing)"
    )
    apply.add_argument(
        "file", type=Path, help="YAML or JSON configuration (organisations, badges, tiers, periods)"
    )
    apply.add_argument(
        "--dry-run",
        action="store_true",
        help="validate and preview what existing mentors would earn or lose; write nothing",
    )
    apply.set_defaults(handler=definitions_apply)

    schema = commands.add_parser("schema", help="print contracts for producers")
    schema_commands = schema.add_subparsers(dest="schema_command", metavar="WHAT", required=True)
    events = schema_commands.add_parser("events", help="the JSON Schema of activity events")
    events.set_defaults(handler=schema_events)


def db_upgrade(args: argparse.Namespace) -> int:
    from schema.migrate import current_revision, pending_revisions, upgrade

    engine = get_engine()
    where = engine.url.render_as_string(hide_password=True)
    pending = pending_revisions(engine)
    upgrade(engine)
    for revision, title in pending:
        print(f"applied migration {revision}: {title}")
    state = f"now at revision {current_revision(engine)}"
    if pending:
        print(f"database at {where}: applied {len(pending)} migration(s), {state}")
    else:
        print(f"database at {where} was already up to date ({state}); nothing applied")
    return EXIT_OK


def definitions_apply(args: argparse.Namespace) -> int:
    """Apply the file, then evaluate existing mentors against what it changed.

    Badges the file creates, enables or whose criteria it changes reach every
    mentor who already qualifies before the command returns (backfill awards:
    in-app notifications only); ``--dry-run`` prints the same counts.
    """
    from worker.configuration.followup import apply_and_evaluate

    bars: list[Any] = []

    def progress(total: int) -> Callable[[int], Any]:
        bar = tqdm(
            total=total,
            disable=total < PROGRESS_MENTORS,
            file=sys.stderr,
            unit="mentor",
            desc="evaluating",
        )
        bars.append(bar)
        update: Callable[[int], Any] = bar.update
        return update

    try:
        config = load_configuration_file(args.file)
        outcome = apply_and_evaluate(
            get_engine(),
            config,
            clock=SystemClock(),
            dry_run=args.dry_run,
            progress=progress,
        )
    except ConfigurationError as exc:
        lines = "\n".join(f"  {p}" for p in exc.problems)
        raise invalid(f"{args.file}: invalid, nothing written:\n{lines}") from None
    finally:
        for bar in bars:
            bar.close()
    _print_outcome(args.file, outcome)
    return EXIT_OK


def _print_outcome(path: Path, outcome: ApplyOutcome) -> None:
    report = outcome.report
    for warning in report.warnings:
        print(f"warning: {warning}")
    verb = "would change" if outcome.dry_run else "changed"
    print(
        f"{path}: {verb} {report.organisations} organisation(s), {report.badges} badge(s), "
        f"{report.tiers} tier(s), {report.award_periods} award period(s)"
    )
    earned, lost = (
        ("would newly earn", "would lose") if outcome.dry_run else ("newly earned", "lost")
    )
    for counts in outcome.badges:
        line = f"badge {counts.code}: {counts.newly_earned} mentor(s) {earned} it"
        if counts.revocable:
            line += f", {counts.lost} {lost} it"
        print(line)
    for org, promotions in outcome.promotions.items():
        print(f"tiers of organisation {org} re-evaluated: {len(promotions)} promotion(s)")


def schema_events(args: argparse.Namespace) -> int:
    print_json(event_json_schema())
    return EXIT_OK
