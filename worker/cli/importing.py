"""``badges import activities FILE``: bulk import of historical activities."""

from __future__ import annotations

import argparse
import sys
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from tqdm import tqdm

from worker.cli.common import EXIT_OK, invalid
from worker.core.clock import SystemClock
from worker.db.engine import behind_transaction_pooler, get_engine
from worker.ingestion.history_import import (
    DEFAULT_GROUP_ROWS,
    HistoryImportError,
    ImportReport,
    import_activities,
)


def register(commands: Any) -> None:
    importing = commands.add_parser("import", help="bulk import of history")
    what = importing.add_subparsers(dest="import_command", metavar="WHAT", required=True)
    activities = what.add_parser(
        "activities",
        help="import historical activities (JSON lines of activity objects), with full evaluation",
    )
    activities.add_argument("file", type=Path, help="JSON-lines file: one activity object per line")
    activities.add_argument(
        "--chunk-size",
        type=int,
        default=DEFAULT_GROUP_ROWS,
        help="about this many rows per transaction (whole mentors: a group of them at a time)",
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
    engine = get_engine()
    if behind_transaction_pooler(engine.url.render_as_string(hide_password=False)):
        raise invalid(
            "the history import keeps a temporary table across transactions, which a "
            "transaction-mode pooler cannot: run it with DATABASE_URL on a direct or session "
            "connection (DATABASE_POOLER says which)"
        )
    show = sys.stderr.isatty()
    with ExitStack() as bars:
        reading = bars.enter_context(
            tqdm(total=size, unit="B", unit_scale=True, desc="validating", disable=not show)
        )
        loading: list[tqdm[Any]] = []

        def staged(report: ImportReport) -> None:
            reading.close()
            loading.append(
                bars.enter_context(
                    tqdm(
                        total=len(report.mentors), unit="mentor", desc="importing", disable=not show
                    )
                )
            )

        def group_done(report: ImportReport) -> None:
            loading[0].update(len(report.mentors))

        try:
            report = import_activities(
                engine,
                path,
                clock=SystemClock(),
                group_rows=args.chunk_size,
                progress=reading.update,
                on_staged=staged,
                on_group=group_done,
            )
        except HistoryImportError as exc:
            listed = "\n".join(f"  {p}" for p in exc.problems)
            raise invalid(f"{path}: invalid, nothing imported:\n{listed}") from None
    duplicates = (
        f", {report.duplicate_lines} repeated line(s) ignored" if report.duplicate_lines else ""
    )
    print(
        f"{path}: {report.lines} line(s); imported {report.imported} new activit(ies), "
        f"{report.already_present} already present{duplicates}; "
        f"{report.awarded} badge(s) awarded (backfill)"
    )
    return EXIT_OK
