"""Throwaway PostgreSQL databases and Redis database indexes for one scenario.

The same conventions as ``tests/services.py`` (so benchmark and test runs on
one machine never take each other's resources): databases are created under a
``badges_bench`` prefix and dropped with ``WITH (FORCE)``; a Redis index
1..15 is claimed with a key in db 0 (the same claim keys the tests use) and
flushed before and after use.

This module imports nothing from ``worker``: the scenario sets
``DATABASE_URL``/``BROKER_URL`` here *before* the worker's settings are read.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import redis
from sqlalchemy import create_engine, text

from bench.progress import say

ADMIN_URL = os.environ.get(
    "BENCH_POSTGRES_ADMIN_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
)
REDIS_HOST_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379")
DATABASE_PREFIX = "badges_bench"
#: Claim keys shared with tests/services.py, so the two never pick the same index.
CLAIM_KEY = "badges-test-claim:{index}"
CLAIM_TTL_S = 3 * 3600


@dataclass(frozen=True)
class Environment:
    """What a scenario runs against."""

    database_url: str
    broker_url: str
    redis_index: int

    def variables(self) -> dict[str, str]:
        """The environment a worker (or the CLI) needs to use these resources."""
        return {"DATABASE_URL": self.database_url, "BROKER_URL": self.broker_url}

    def process_environment(self) -> dict[str, str]:
        """This process's environment with :meth:`variables` set (for subprocesses)."""
        return {**os.environ, **self.variables()}


def create_database() -> str:
    """Create an empty database; returns its SQLAlchemy URL."""
    name = f"{DATABASE_PREFIX}_{os.getpid()}_{uuid.uuid4().hex[:8]}"
    admin = create_engine(ADMIN_URL, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
    finally:
        admin.dispose()
    return ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"


def drop_database(url: str) -> None:
    """Drop a database made by :func:`create_database` (refuses any other name)."""
    name = url.rsplit("/", 1)[1]
    if not name.startswith(DATABASE_PREFIX):
        raise RuntimeError(f"refusing to drop non-benchmark database {name!r}")
    admin = create_engine(ADMIN_URL, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    finally:
        admin.dispose()


def claim_redis_db() -> int:
    """Claim a free Redis database index (1..15) and flush it."""
    control = redis.Redis.from_url(f"{REDIS_HOST_URL}/0")
    token = f"bench-{os.getpid()}-{uuid.uuid4().hex}"
    for index in range(1, 16):
        if control.set(CLAIM_KEY.format(index=index), token, nx=True, ex=CLAIM_TTL_S):
            redis.Redis.from_url(f"{REDIS_HOST_URL}/{index}").flushdb()
            return index
    raise RuntimeError("no free Redis database index (1..15 all claimed)")


def release_redis_db(index: int) -> None:
    """Flush the index and give up the claim."""
    redis.Redis.from_url(f"{REDIS_HOST_URL}/{index}").flushdb()
    redis.Redis.from_url(f"{REDIS_HOST_URL}/0").delete(CLAIM_KEY.format(index=index))


@contextmanager
def throwaway_environment() -> Iterator[Environment]:
    """A fresh database and Redis index, exported as ``DATABASE_URL``/``BROKER_URL``.

    Must be entered before anything imports ``worker.core.settings`` in this
    process (the settings are read once); :func:`check_settings` verifies it.
    """
    database_url = create_database()
    index: int | None = None
    saved = {k: os.environ.get(k) for k in ("DATABASE_URL", "BROKER_URL")}
    try:
        index = claim_redis_db()
        env = Environment(database_url, f"{REDIS_HOST_URL}/{index}", index)
        os.environ.update(env.variables())
        say(f"database {database_url.rsplit('/', 1)[1]}, redis db {index}")
        yield env
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        if index is not None:
            release_redis_db(index)
        drop_database(database_url)
        say("database dropped, redis index released")


def check_settings(env: Environment) -> None:
    """Fail loudly if this process's worker settings point somewhere else."""
    from worker.app import app
    from worker.core.settings import get_settings

    settings = get_settings()
    if settings.database_url != env.database_url or app.conf.broker_url != env.broker_url:
        raise RuntimeError(
            "worker settings were read before the benchmark environment was set; "
            "run each scenario in its own process (python -m bench SCENARIO)"
        )
