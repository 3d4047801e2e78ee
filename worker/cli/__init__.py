"""The ``badges`` command.

Exit codes: 0 success, 2 invalid input (nothing written), 1 anything else.
Each command group lives in its own module and registers its sub-commands.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence
from importlib.metadata import PackageNotFoundError, version
from typing import Any

from sqlalchemy.exc import OperationalError, ProgrammingError

from worker.cli import activity, admin, demo, importing, notifications, quarantine, tiers
from worker.cli.common import EXIT_ERROR, EXIT_INVALID, CliError
from worker.core.settings import get_settings
from worker.observability.logging import configure_logging

COMMAND_GROUPS = (admin, activity, importing, demo, notifications, tiers, quarantine)
DISTRIBUTION = "peer-mentor-badges"
MISSING_TABLES_HINT = "the database has no tables yet; run `badges db upgrade` first"


class _Parser(argparse.ArgumentParser):
    """Every (sub-)command shows its defaults in ``--help``."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("formatter_class", argparse.ArgumentDefaultsHelpFormatter)
        super().__init__(*args, **kwargs)


def package_version() -> str:
    try:
        return version(DISTRIBUTION)
    except PackageNotFoundError:  # running from a source tree that was never installed
        return "unknown"


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="badges", description="Peer-mentor recognition: badges and tiers from activity events."
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug output")
    parser.add_argument("--version", action="version", version=f"%(prog)s {package_version()}")
    commands = parser.add_subparsers(
        dest="command", metavar="COMMAND", required=True, parser_class=_Parser
    )
    for group in COMMAND_GROUPS:
        group.register(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    configure_logging(
        logging.DEBUG if args.verbose else logging.WARNING,
        get_settings().log_format,
        text_format="%(levelname)s %(name)s: %(message)s",
    )
    # The Celery app installs the sender that delivers notifications after commit.
    import worker.app  # noqa: F401

    try:
        code = int(args.handler(args) or 0)
        sys.stdout.flush()  # a closed pipe shows here, not at interpreter exit
        return code
    except BrokenPipeError:
        return _closed_pipe()
    except CliError as exc:
        print(f"badges: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("badges: interrupted", file=sys.stderr)
        return EXIT_ERROR
    except (OperationalError, ProgrammingError) as exc:
        logging.getLogger("badges").debug("failure", exc_info=True)
        if _missing_table(exc):
            print(f"badges: error: {MISSING_TABLES_HINT}", file=sys.stderr)
        else:
            print(f"badges: error: {_first_line(exc)}", file=sys.stderr)
        return EXIT_ERROR
    except Exception as exc:  # a clear line, not a traceback, for the operator
        logging.getLogger("badges").debug("failure", exc_info=True)
        print(f"badges: error: {exc}", file=sys.stderr)
        return EXIT_ERROR


def _closed_pipe() -> int:
    """The reader went away (``badges schema events | head``): stop quietly, exit 0.

    Python would complain again when it flushes stdout at exit, so stdout is
    pointed at /dev/null first (the recipe of the Python docs on SIGPIPE).
    """
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    return 0


def _missing_table(exc: Exception) -> bool:
    # PostgreSQL: UndefinedTable (SQLSTATE 42P01); SQLite: "no such table".
    original = getattr(exc, "orig", None)
    return getattr(original, "sqlstate", None) == "42P01" or "no such table" in str(exc)


def _first_line(exc: Exception) -> str:
    original = getattr(exc, "orig", None) or exc
    return str(original).strip().splitlines()[0] if str(original).strip() else type(exc).__name__


__all__ = ["EXIT_INVALID", "build_parser", "main"]

if __name__ == "__main__":
    sys.exit(main())
