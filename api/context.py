"""What every request handler shares: the token verifier, the clock and the database."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, tzinfo
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy import Connection, Engine

from api.identity import TokenVerifier
from worker.core.clock import Clock
from worker.db.engine import get_engine
from worker.db.unit_of_work import unit_of_work


@dataclass(frozen=True)
class ApiContext:
    identity: TokenVerifier
    clock: Clock
    #: Local time zone of award periods and years (``TIMEZONE``).
    tz: tzinfo = field(default=UTC)
    #: None: the process-wide engine of ``DATABASE_URL`` (resolved per use, so
    #: tests that swap the environment before the first request still work).
    engine: Engine | None = None

    @property
    def database(self) -> Engine:
        return self.engine or get_engine()

    @contextmanager
    def transaction(self) -> Iterator[Connection]:
        """One unit of work: commit on success, roll back on any error."""
        with unit_of_work(self.database) as conn:
            yield conn

    @contextmanager
    def dry_run(self) -> Iterator[Connection]:
        """A transaction that is always rolled back: see what would change."""
        with self.database.connect() as conn:
            transaction = conn.begin()
            try:
                yield conn
            finally:
                transaction.rollback()


def get_context(request: Request) -> ApiContext:
    context: ApiContext = request.app.state.api
    return context


Context = Annotated[ApiContext, Depends(get_context)]
