"""``badges notifications status`` and ``badges notifications retry-dead``."""

from __future__ import annotations

import argparse
from typing import Any

from worker.cli.common import EXIT_OK, print_json
from worker.core.clock import SystemClock
from worker.db.unit_of_work import unit_of_work
from worker.notifications.items import outbox_counts, requeue_dead
from worker.notifications.types import Channel, OutboxState


def register(commands: Any) -> None:
    group = commands.add_parser("notifications", help="notification outbox: status, dead letters")
    actions = group.add_subparsers(dest="notifications_command", metavar="ACTION", required=True)

    status = actions.add_parser("status", help="outbox rows per channel and state")
    status.add_argument("--json", action="store_true", help="print a JSON object")
    status.set_defaults(handler=show_status)

    retry = actions.add_parser(
        "retry-dead", help="re-queue dead rows for delivery (a fresh attempt budget)"
    )
    retry.add_argument(
        "--channel", choices=[c.value for c in Channel], help="only this channel (default: both)"
    )
    retry.set_defaults(handler=retry_dead)


def show_status(args: argparse.Namespace) -> int:
    with unit_of_work() as conn:
        counts = outbox_counts(conn)
    if args.json:
        print_json(counts)
        return EXIT_OK
    states = [s.value for s in OutboxState]
    print(f"{'channel':<8}" + "".join(f"{s:>9}" for s in states))
    for channel, by_state in counts.items():
        print(f"{channel:<8}" + "".join(f"{by_state.get(s, 0):>9}" for s in states))
    return EXIT_OK


def retry_dead(args: argparse.Namespace) -> int:
    channel = Channel(args.channel) if args.channel else None
    with unit_of_work() as conn:
        refs = requeue_dead(conn, now=SystemClock().now(), channel=channel)
    print(f"re-queued {len(refs)} dead notification(s)")
    return EXIT_OK
