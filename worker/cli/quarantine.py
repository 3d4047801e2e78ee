"""``badges quarantine list`` and ``badges quarantine replay``."""

from __future__ import annotations

import argparse
from typing import Any

from worker.cli.common import EXIT_ERROR, EXIT_OK, invalid, print_json
from worker.core.clock import SystemClock
from worker.db.unit_of_work import unit_of_work
from worker.ingestion.replay import existing_ids, list_quarantined, replay_quarantined


def register(commands: Any) -> None:
    quarantine = commands.add_parser(
        "quarantine",
        help="events kept aside because they broke the contract or named an unknown organisation",
    )
    actions = quarantine.add_subparsers(dest="quarantine_command", metavar="ACTION", required=True)
    listing = actions.add_parser(
        "list",
        help="quarantined events: id, reason, received time, raw payload",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    listing.add_argument("--json", action="store_true", help="print a JSON array")
    listing.add_argument(
        "--pending", action="store_true", help="only events not replayed successfully yet"
    )
    listing.add_argument("--limit", type=int, default=1000, help="show at most this many")
    listing.set_defaults(handler=list_events)

    replay = actions.add_parser(
        "replay",
        help="feed quarantined events through ingestion again (idempotent)",
        description=(
            "Feed quarantined events that were not replayed yet through ingestion again, "
            "e.g. after the missing organisation was configured. Replaying twice changes "
            "nothing; an event that still fails stays quarantined with its new reason "
            "(exit status 1)."
        ),
    )
    which = replay.add_mutually_exclusive_group(required=True)
    which.add_argument(
        "--id", type=int, nargs="+", dest="ids", metavar="ID", help="quarantine row ids to replay"
    )
    which.add_argument("--all", action="store_true", help="every event not replayed yet")
    replay.set_defaults(handler=replay_events)


def list_events(args: argparse.Namespace) -> int:
    with unit_of_work() as conn:
        rows = list_quarantined(conn, pending_only=args.pending, limit=args.limit)
    if args.json:
        print_json(
            [
                {
                    "id": r.id,
                    "event_id": r.event_id,
                    "task_id": r.task_id,
                    "reason": r.reason,
                    "payload": r.payload,
                    "quarantined_at": r.quarantined_at.isoformat(),
                    "replayed_at": r.replayed_at.isoformat() if r.replayed_at else None,
                }
                for r in rows
            ]
        )
        return EXIT_OK
    if not rows:
        print("no quarantined events")
    for r in rows:
        state = f"replayed {r.replayed_at:%Y-%m-%d %H:%M}" if r.replayed_at else "quarantined"
        print(f"#{r.id}  {r.quarantined_at:%Y-%m-%d %H:%M:%S}  {state}  {r.reason}")
        print(f"    {r.raw_payload}")
    return EXIT_OK


def replay_events(args: argparse.Namespace) -> int:
    ids: list[int] | None = None if args.all else list(args.ids)
    with unit_of_work() as conn:
        if ids is not None:
            missing = sorted(set(ids) - existing_ids(conn, ids))
            if missing:
                raise invalid(f"no quarantined event with id {', '.join(map(str, missing))}")
        report = replay_quarantined(conn, ids=ids, clock=SystemClock())
    result = report.result
    print(
        f"replayed {len(report.replayed)} event(s): applied {result.applied}, "
        f"duplicates {result.duplicates}, stale {result.stale}, "
        f"badges awarded {len(result.awarded)}"
    )
    for row_id, reason in sorted(report.still_failing.items()):
        print(f"still quarantined #{row_id}: {reason}")
    if ids is not None:
        skipped = len(set(ids) - set(report.replayed) - set(report.still_failing))
        if skipped:
            print(f"{skipped} event(s) skipped: already replayed")
    return EXIT_ERROR if report.still_failing else EXIT_OK
