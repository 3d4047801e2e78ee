"""Which database URLs count as going through a transaction-mode pooler."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from worker.core.settings import get_settings
from worker.db.engine import behind_transaction_pooler

DIRECT = "postgresql+psycopg://postgres@db.abcdefghijklmnop.supabase.co:5432/postgres"
POOLER = "postgresql+psycopg://postgres.abcdefghijklmnop@aws-0-eu-north-1.pooler.supabase.com:6543/postgres"
SESSION_POOLER = POOLER.replace(":6543/", ":5432/")


@pytest.fixture
def pooler_setting(monkeypatch: pytest.MonkeyPatch) -> Iterator[pytest.MonkeyPatch]:
    monkeypatch.delenv("DATABASE_POOLER", raising=False)
    get_settings.cache_clear()
    yield monkeypatch
    get_settings.cache_clear()


@pytest.mark.parametrize(
    ("setting", "url", "expected"),
    [
        (None, DIRECT, False),
        (None, POOLER, True),  # Supabase's transaction pooler port
        (None, SESSION_POOLER, False),
        ("transaction", "postgresql+psycopg://127.0.0.1:6432/badges", True),  # a PgBouncer
        ("session", POOLER, False),
        ("none", POOLER, False),
    ],
)
def test_transaction_pooler_detection(
    pooler_setting: pytest.MonkeyPatch, setting: str | None, url: str, expected: bool
) -> None:
    if setting is not None:
        pooler_setting.setenv("DATABASE_POOLER", setting)
        get_settings.cache_clear()
    assert behind_transaction_pooler(url) is expected
