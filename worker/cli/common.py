"""Helpers shared by the CLI modules."""

from __future__ import annotations

import json
import sys
from typing import Any
from uuid import UUID

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_INVALID = 2


class CliError(Exception):
    def __init__(self, message: str, exit_code: int = EXIT_ERROR) -> None:
        super().__init__(message)
        self.exit_code = exit_code


def invalid(message: str) -> CliError:
    return CliError(message, EXIT_INVALID)


def parse_uuid(value: str, what: str) -> UUID:
    try:
        return UUID(value)
    except ValueError:
        raise invalid(f"{what}: {value!r} is not a UUID") from None


def print_json(data: Any) -> None:
    json.dump(data, sys.stdout, indent=2, default=str, ensure_ascii=False)
    sys.stdout.write("\n")
