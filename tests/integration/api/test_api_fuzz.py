"""Fuzzing the API over its own OpenAPI spec (schemathesis), with valid tokens.

For every operation, generated requests must never produce a 5xx, and every
response must match what the spec documents: status code, media type and
body schema.  Bounded (a few examples per operation, no shrinking) so it
stays a quick part of the suite, and deterministic so a failure reproduces.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from sqlalchemy import Engine, insert

from api.app import create_app
from api.auth import issue_token
from schema.tables import notifications
from tests.helpers import badge, threshold
from tests.integration.api.harness import NOW, SECRET, Org, bearer
from tests.integration.harness import apply, organisation
from worker.badges.awards import award_badge, get_definition_by_code
from worker.core.clock import FixedClock
from worker.db.unit_of_work import unit_of_work

#: Examples per operation, token and id mode: 19 operations x 3 tokens x 2 keeps this quick.
MAX_EXAMPLES = 6
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]
ORG = Org()
TOKENS = {
    "service_role": bearer(issue_token(SECRET, role="service_role", sub="fuzz", ttl_s=86400)),
    "org_admin": bearer(
        issue_token(SECRET, role="org_admin", organisation_id=ORG.id, sub="fuzz", ttl_s=86400)
    ),
    "mentor": bearer(
        issue_token(SECRET, role="mentor", organisation_id=ORG.id, sub=ORG.mentor, ttl_s=86400)
    ),
}

# The app uses the process-wide engine: DATABASE_URL is this run's throwaway database.
schema = schemathesis.openapi.from_asgi(
    "/openapi.json", create_app(jwt_secret=SECRET, clock=FixedClock(NOW))
)
schema.config.generation.update(
    modes=[schemathesis.GenerationMode.POSITIVE],
    max_examples=MAX_EXAMPLES,
    deterministic=True,
    no_shrink=True,
    with_security_parameters=False,
)
schema.config.phases.update(phases=["examples", "fuzzing"])


#: Ids of the seeded rows, by the parameter or body field names that refer to them.
KNOWN: dict[str, str] = {}


@pytest.fixture
def seeded(clean_db: Engine) -> Iterator[None]:
    """An organisation with a badge, an award and a notification for its mentor."""
    apply(
        clean_db,
        {"organisations": [organisation(ORG.id)], "badges": [badge(ORG.id, "a", threshold(1))]},
    )
    with unit_of_work(clean_db) as conn:
        definition = get_definition_by_code(conn, ORG.id, "a")
        earned = award_badge(conn, definition.id, ORG.mentor, now=NOW).earned
        notification_id = uuid.uuid4()
        conn.execute(
            insert(notifications).values(
                id=notification_id,
                peer_mentor_id=ORG.mentor,
                organisation_id=ORG.id,
                kind="badge_earned",
                payload={"code": "a"},
                created_at=NOW,
            )
        )
    KNOWN.update(
        earned_badge_id=str(earned.id),
        badge_definition_id=str(definition.id),
        notification_id=str(notification_id),
        peer_mentor_id=str(ORG.mentor),
        organisation_id=str(ORG.id),
    )
    yield
    KNOWN.clear()


def _aim_at_seeded_rows(case: schemathesis.Case[Any]) -> None:
    """Point ids at the seeded rows, so the fuzzer also reaches the code past the lookups."""
    for values in (case.path_parameters, case.query):
        for name in list(values or {}):
            if name in KNOWN:
                values[name] = KNOWN[name]
    if isinstance(case.body, dict):
        for name in ("badge_definition_id", "peer_mentor_id"):
            if name in case.body:
                case.body[name] = KNOWN[name]
        items = case.body.get("items")
        for item in items if isinstance(items, list) else []:
            if isinstance(item, dict) and "organisation_id" in item:
                item["organisation_id"] = KNOWN["organisation_id"]


@pytest.mark.parametrize("aimed", [False, True], ids=["generated-ids", "seeded-ids"])
@pytest.mark.parametrize("role", sorted(TOKENS))
@schema.parametrize()
# The fixture seeds once per operation; the examples only read it or change it harmlessly.
@settings(suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_the_api_conforms_to_its_spec(
    case: schemathesis.Case[Any], role: str, aimed: bool, seeded: None
) -> None:
    if aimed:
        _aim_at_seeded_rows(case)
    response = case.call_and_validate(headers=TOKENS[role], checks=CHECKS)
    assert response.status_code < 500
