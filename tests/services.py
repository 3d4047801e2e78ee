"""Throwaway test resources on the machine's real PostgreSQL and Redis.

Each test run gets its own PostgreSQL database (dropped at the end) and its
own Redis database index (flushed before and after), so runs never touch a
non-test database and parallel runs do not steal each other's messages.
"""

from __future__ import annotations

import os
import uuid

import redis
from sqlalchemy import create_engine, text

ADMIN_URL = os.environ.get(
    "TEST_POSTGRES_ADMIN_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
)
REDIS_HOST_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379")
_LOCK_TTL_S = 3 * 3600


def create_database(prefix: str = "badges_test") -> str:
    name = f"{prefix}_{os.getpid()}_{uuid.uuid4().hex[:8]}"
    admin = create_engine(ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    return ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"


def drop_database(url: str) -> None:
    name = url.rsplit("/", 1)[1]
    if not name.startswith("badges_test") and not name.startswith("badges_bench"):
        raise RuntimeError(f"refusing to drop non-test database {name!r}")
    admin = create_engine(ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


def claim_redis_db() -> tuple[str, int]:
    """Claim a free Redis database index 1..15 (db 0 holds the claims)."""
    control = redis.Redis.from_url(f"{REDIS_HOST_URL}/0")
    token = f"{os.getpid()}-{uuid.uuid4().hex}"
    for index in range(1, 16):
        if control.set(f"badges-test-claim:{index}", token, nx=True, ex=_LOCK_TTL_S):
            redis.Redis.from_url(f"{REDIS_HOST_URL}/{index}").flushdb()
            return f"{REDIS_HOST_URL}/{index}", index
    raise RuntimeError("no free Redis database index for tests (1..15 all claimed)")


def release_redis_db(index: int) -> None:
    redis.Redis.from_url(f"{REDIS_HOST_URL}/{index}").flushdb()
    redis.Redis.from_url(f"{REDIS_HOST_URL}/0").delete(f"badges-test-claim:{index}")
