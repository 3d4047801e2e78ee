"""``badges db upgrade``, ``badges definitions apply``, ``badges schema events``."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from schema.migrate import current_revision, pending_revisions, upgrade
from worker.cli.common import EXIT_OK, invalid, print_json
from worker.configuration.apply import ApplyReport, apply_configuration
from worker.configuration.schema import ConfigurationError, load_configuration_file
from worker.core.clock import SystemClock
from worker.db.engine import get_engine
from worker.db.unit_of_work import unit_of_work
from worker.model.events import event_json_schema


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
    apply.add_argument("--dry-run", action="store_true", help="validate only, write nothing")
    apply.set_defaults(handler=definitions_apply)

    schema = commands.add_parser("schema", help="print contracts for producers")
    schema_commands = schema.add_subparsers(dest="schema_command", metavar="WHAT", required=True)
    events = schema_commands.add_parser("events", help="the JSON Schema of activity events")
    events.set_defaults(handler=schema_events)


def db_upgrade(args: argparse.Namespace) -> int:
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
    try:
        config = load_configuration_file(args.file)
        try:
            with unit_of_work() as conn:
                report = apply_configuration(conn, config, SystemClock())
                if args.dry_run:
                    raise _RolledBack(report)
        except _RolledBack as rolled_back:
            report = rolled_back.report
    except ConfigurationError as exc:
        lines = "\n".join(f"  {p}" for p in exc.problems)
        raise invalid(f"{args.file}: invalid, nothing written:\n{lines}") from None
    for warning in report.warnings:
        print(f"warning: {warning}")
    verb = "would change" if args.dry_run else "changed"
    print(
        f"{args.file}: {verb} {report.organisations} organisation(s), {report.badges} badge(s), "
        f"{report.tiers} tier(s), {report.award_periods} award period(s)"
    )
    return EXIT_OK


class _RolledBack(Exception):
    """Leaves the unit of work by rolling it back (dry run)."""

    def __init__(self, report: ApplyReport) -> None:
        super().__init__("dry run")
        self.report = report


def schema_events(args: argparse.Namespace) -> int:
    print_json(event_json_schema())
    return EXIT_OK
