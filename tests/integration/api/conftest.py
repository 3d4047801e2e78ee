"""The REST API's tests: each gets the ASGI app over a clean database."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import Engine

from tests.integration.api.harness import Api, running_api


@pytest.fixture
def api(clean_db: Engine) -> Iterator[Api]:
    with running_api(clean_db) as harness:
        yield harness
