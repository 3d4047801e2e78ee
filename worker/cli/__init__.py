"""The ``badges`` command.

Exit codes: 0 success, 2 invalid input (nothing written), 1 anything else.
Each command group lives in its own module and registers its sub-commands.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

from worker.cli import activity, admin, demo, importing, notifications, tiers
from worker.cli.common import EXIT_ERROR, EXIT_INVALID, CliError

COMMAND_GROUPS = (admin, activity, importing, demo, notifications, tiers)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="badges", description="Peer-mentor recognition: badges and tiers from activity events."
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug output")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for group in COMMAND_GROUPS:
        group.register(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )
    # The Celery app installs the sender that delivers notifications after commit.
    import worker.app  # noqa: F401

    try:
        return int(args.handler(args) or 0)
    except CliError as exc:
        print(f"badges: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("badges: interrupted", file=sys.stderr)
        return EXIT_ERROR
    except Exception as exc:  # a clear line, not a traceback, for the operator
        logging.getLogger("badges").debug("failure", exc_info=True)
        print(f"badges: error: {exc}", file=sys.stderr)
        return EXIT_ERROR


__all__ = ["EXIT_INVALID", "build_parser", "main"]

if __name__ == "__main__":
    sys.exit(main())
