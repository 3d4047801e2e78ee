"""``badges import activities FILE``: bulk import of historical activities."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from tqdm import tqdm

from worker.cli.common import EXIT_OK, invalid
from worker.clock import SystemClock
from worker.db import get_engine, unit_of_work
from worker.history_import import (
    DEFAULT_CHUNK,
    HistoryImportError,
    ImportReport,
    import_activities,
    validate_file,
)


def register(commands: Any) -> None:
    importing = commands.add_parser("import", help="bulk import of history")
    what = importing.add_subparsers(dest="import_command", metavar="WHAT", required=True)
    activities = what.add_parser(
        "activities",
        help="import historical activities (JSON lines of activity objects), with full evaluation",
    )
    activities.add_argument("file", type=Path)
    activities.add_argument(
        "--chunk-size", type=int, default=DEFAULT_CHUNK, help="rows per transaction"
    )
    activities.set_defaults(handler=import_history)


def import_history(args: argparse.Namespace) -> int:
    path: Path = args.file
    if args.chunk_size < 1:
        raise invalid("--chunk-size must be at least 1")
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise invalid(f"cannot read {path}: {exc.strerror}") from None
    show = sys.stderr.isatty()
    try:
        with (
            tqdm(total=size, unit="B", unit_scale=True, desc="validating", disable=not show) as bar,
            unit_of_work() as conn,
        ):
            lines = validate_file(conn, path, progress=bar.update)
    except HistoryImportError as exc:
        listed = "\n".join(f"  {p}" for p in exc.problems)
        raise invalid(f"{path}: invalid, nothing imported:\n{listed}") from None

    def send_notifications(report: ImportReport) -> None:
        if report.outbox:
            from worker.tasks.common import dispatch_outbox

            dispatch_outbox(report.outbox)

    with tqdm(total=size, unit="B", unit_scale=True, desc="importing", disable=not show) as bar:
        report = import_activities(
            get_engine(),
            path,
            clock=SystemClock(),
            chunk_size=args.chunk_size,
            progress=bar.update,
            on_chunk=send_notifications,
        )
    print(
        f"{path}: {lines} line(s); imported {report.imported} new activit(ies), "
        f"{report.already_present} already present; {report.awarded} badge(s) awarded (backfill)"
    )
    return EXIT_OK
