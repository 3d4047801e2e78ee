"""A test harness for the REST API: the ASGI app in-process, real PostgreSQL, signed tokens."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import Engine, insert

from api.app import create_app
from api.auth import issue_token
from api.identity import TokenVerifier
from schema.tables import notifications
from tests.helpers import badge, threshold
from tests.integration.harness import apply, organisation
from worker.badges.awards import EarnedBadge, award_badge
from worker.core.clock import FixedClock
from worker.db.unit_of_work import unit_of_work

SECRET = "test-secret-for-the-api-with-at-least-32-bytes"
NOW = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)


@dataclass
class Org:
    """An organisation with two badges, an admin and a mentor."""

    id: uuid.UUID = field(default_factory=uuid.uuid4)
    mentor: uuid.UUID = field(default_factory=uuid.uuid4)
    other_mentor: uuid.UUID = field(default_factory=uuid.uuid4)
    badge_ids: dict[str, uuid.UUID] = field(default_factory=dict)


class Api:
    def __init__(
        self, engine: Engine, client: TestClient, *, audience: str | None, issuer: str | None
    ) -> None:
        self.engine = engine
        self.client = client
        #: What the app checks on user tokens: the harness's tokens carry them.
        self.audience, self.issuer = audience, issuer

    # --- tokens ---
    def service(self) -> dict[str, str]:
        return bearer(
            issue_token(
                SECRET, role="service_role", sub="ops", audience=self.audience, issuer=self.issuer
            )
        )

    def admin(self, org: Org) -> dict[str, str]:
        return bearer(
            issue_token(
                SECRET,
                role="org_admin",
                organisation_id=org.id,
                sub="admin",
                audience=self.audience,
                issuer=self.issuer,
            )
        )

    def mentor(self, org: Org, mentor: uuid.UUID | None = None) -> dict[str, str]:
        return bearer(
            issue_token(
                SECRET,
                role="mentor",
                organisation_id=org.id,
                sub=mentor or org.mentor,
                audience=self.audience,
                issuer=self.issuer,
            )
        )

    # --- data ---
    def org(self, *codes: str) -> Org:
        """A stored organisation with a ``threshold`` badge per code."""
        org = Org()
        apply(
            self.engine,
            {
                "organisations": [organisation(org.id)],
                "badges": [badge(org.id, code, threshold(1000)) for code in codes],
            },
        )
        response = self.client.get("/api/v1/badge-definitions", headers=self.admin(org)).json()
        org.badge_ids = {item["code"]: uuid.UUID(item["id"]) for item in response["items"]}
        return org

    def award(self, org: Org, code: str, mentor: uuid.UUID | None = None) -> EarnedBadge:
        with unit_of_work(self.engine) as conn:
            return award_badge(
                conn, org.badge_ids[code], mentor or org.mentor, now=NOW, source="manual"
            ).earned

    def notification(
        self, org: Org, mentor: uuid.UUID | None = None, *, at: datetime = NOW, read: bool = False
    ) -> uuid.UUID:
        notification_id = uuid.uuid4()
        with unit_of_work(self.engine) as conn:
            conn.execute(
                insert(notifications).values(
                    id=notification_id,
                    peer_mentor_id=mentor or org.mentor,
                    organisation_id=org.id,
                    kind="badge_earned",
                    payload={"code": "x"},
                    created_at=at,
                    read_at=at if read else None,
                )
            )
        return notification_id


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@contextmanager
def running_api(
    engine: Engine,
    *,
    jwt_secret: str = SECRET,
    now: datetime = NOW,
    identity: TokenVerifier | None = None,
) -> Iterator[Api]:
    app = create_app(jwt_secret=jwt_secret, clock=FixedClock(now), engine=engine, identity=identity)
    with TestClient(app, raise_server_exceptions=False) as client:
        yield Api(
            engine,
            client,
            audience=identity.audience if identity else None,
            issuer=identity.issuer if identity else None,
        )


def problem_paths(response: Any) -> list[str]:
    """The ``path`` of each entry of a problem document's ``errors``."""
    assert response.headers["content-type"].startswith("application/problem+json")
    return [e["path"] for e in response.json().get("errors") or []]
