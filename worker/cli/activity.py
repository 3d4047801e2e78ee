"""``badges publish``, ``badges earned``, ``badges award``."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from worker.badges.awards import NotFound, award_badge, earned_by_mentor, get_definition_by_code
from worker.cli.common import EXIT_ERROR, EXIT_OK, invalid, parse_uuid, print_json
from worker.core.clock import SystemClock
from worker.db.unit_of_work import unit_of_work
from worker.model.events import InvalidEvent, parse_event
from worker.notifications.outbox import notify_awards


def register(commands: Any) -> None:
    publish = commands.add_parser("publish", help="publish activity events from a JSON-lines file")
    publish.add_argument(
        "file", type=Path, help="JSON-lines file: one activity event object per line"
    )
    publish.set_defaults(handler=publish_events)

    earned = commands.add_parser("earned", help="a mentor's earned badges")
    earned.add_argument("--mentor", required=True, help="peer mentor id")
    earned.add_argument("--json", action="store_true", help="print a JSON array")
    earned.set_defaults(handler=show_earned)

    award = commands.add_parser("award", help="award a badge by hand (idempotent, audited)")
    award.add_argument("--org", required=True, help="organisation id")
    award.add_argument("--badge", required=True, help="badge code")
    award.add_argument("--mentor", required=True, help="peer mentor id")
    award.set_defaults(handler=manual_award)


def read_event_lines(path: Path) -> tuple[list[Any], list[str]]:
    """Parse and validate every line; return the good events and a message per bad line."""
    good: list[Any] = []
    bad: list[str] = []
    try:
        handle = path.open(encoding="utf-8")
    except OSError as exc:
        raise invalid(f"cannot read {path}: {exc.strerror}") from None
    with handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                payload = json.loads(line)
                parse_event(payload)
            except ValueError as exc:
                reason = exc.reason if isinstance(exc, InvalidEvent) else f"not JSON: {exc}"
                bad.append(f"line {number}: {reason}")
                continue
            good.append(payload)
    return good, bad


def publish_events(args: argparse.Namespace) -> int:
    good, bad = read_event_lines(args.file)
    for message in bad:
        print(f"{args.file}: {message}", file=sys.stderr)
    if not good:
        raise invalid(f"{args.file}: no valid events, nothing published")
    from worker.tasks.publishing import publish

    publish(good, progress=sys.stderr.isatty())
    print(f"published {len(good)} event(s); {len(bad)} invalid line(s) skipped")
    return EXIT_ERROR if bad else EXIT_OK


def show_earned(args: argparse.Namespace) -> int:
    mentor = parse_uuid(args.mentor, "--mentor")
    with unit_of_work() as conn:
        badges = earned_by_mentor(conn, mentor)
    if args.json:
        print_json(
            [
                {
                    "id": str(b.id),
                    "badge_definition_id": str(b.badge_definition_id),
                    "code": b.code,
                    "peer_mentor_id": str(b.peer_mentor_id),
                    "organisation_id": str(b.organisation_id),
                    "earned_at": b.earned_at.isoformat(),
                }
                for b in badges
            ]
        )
        return EXIT_OK
    if not badges:
        print(f"mentor {mentor} has earned no badges yet")
    for b in badges:
        print(f"{b.earned_at:%Y-%m-%d %H:%M}  {b.code:<24} {b.name}")
    return EXIT_OK


def manual_award(args: argparse.Namespace) -> int:
    org = parse_uuid(args.org, "--org")
    mentor = parse_uuid(args.mentor, "--mentor")
    now = SystemClock().now()
    try:
        with unit_of_work() as conn:
            definition = get_definition_by_code(conn, org, args.badge)
            outcome = award_badge(
                conn, definition.id, mentor, now=now, source="manual", actor="cli"
            )
            if outcome.created:  # delivered after the commit
                notify_awards(conn, [outcome.earned], now=now)
    except NotFound as exc:
        raise invalid(str(exc)) from None
    state = "awarded" if outcome.created else "already earned"
    print(f"{state}: {definition.code} to {mentor} at {outcome.earned.earned_at.isoformat()}")
    return EXIT_OK
