"""What every task shares: the errors worth retrying, message parsing, job locks."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

from kombu.exceptions import OperationalError as BrokerError
from pydantic import BaseModel, ValidationError
from sqlalchemy import Connection
from sqlalchemy.exc import InterfaceError, OperationalError

from worker.db.locks import try_lock_job
from worker.db.unit_of_work import unit_of_work

log = logging.getLogger(__name__)

#: Outages (connection refused or lost, server shutting down, broker down), not
#: bad input: retried with backoff, never quarantined.
TRANSIENT_ERRORS: tuple[type[BaseException], ...] = (
    OperationalError,
    InterfaceError,
    BrokerError,
    ConnectionError,
)

M = TypeVar("M", bound=BaseModel)


def parse_message(
    task_name: str, model: type[M], args: tuple[Any, ...], kwargs: dict[str, Any]
) -> M | None:
    """The task's keyword arguments as ``model``, or None (logged) when malformed.

    A malformed message cannot succeed on a retry: the caller acknowledges it.
    """
    try:
        if args:
            raise ValueError("no positional arguments allowed")
        return model.model_validate(kwargs)
    except (ValueError, ValidationError) as exc:
        log.error("%s: invalid message %r: %s", task_name, kwargs or args, exc)
        return None


@contextmanager
def locked_job(job_name: str) -> Iterator[Connection | None]:
    """A unit of work holding the job's advisory lock, or None when another run holds it."""
    with unit_of_work() as conn:
        if not try_lock_job(conn, job_name):
            log.info("%s: another run holds the lock; skipped", job_name)
            yield None
            return
        yield conn
