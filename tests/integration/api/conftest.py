"""The REST API's tests: each gets the ASGI app over a clean database."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest
from sqlalchemy import Engine

if TYPE_CHECKING:
    from tests.integration.api.harness import Api


@pytest.fixture
def api(clean_db: Engine) -> Iterator[Api]:
    # Imported here, not at the top: pytest may load this file before the
    # session's environment (database, broker) is set, and the app reads it.
    from tests.integration.api.harness import running_api

    with running_api(clean_db) as harness:
        yield harness
