"""The five earned-badge endpoints, for every role, against the real PostgreSQL."""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import ColumnElement, Engine, Table, func, select

from schema.tables import badge_audit, earned_badges, notification_outbox
from tests.helpers import saved_event
from tests.integration.api.harness import NOW, Api, problem_paths
from worker.core.clock import FixedClock
from worker.db.unit_of_work import unit_of_work
from worker.ingestion.ingest import IncomingEvent, ingest_events
from worker.notifications import dispatch

LIST = "/api/v1/earned-badges"


def _count(engine: Engine, table: Table, *where: ColumnElement[bool]) -> int:
    with engine.connect() as c:
        return int(c.execute(select(func.count()).select_from(table).where(*where)).scalar_one())


# --- list ---------------------------------------------------------------------------


def test_a_mentor_lists_only_their_own_badges(api: Api) -> None:
    org = api.org("a", "b")
    mine = api.award(org, "a")
    api.award(org, "b", org.other_mentor)
    response = api.client.get(LIST, headers=api.mentor(org))
    assert response.status_code == 200
    body = response.json()
    assert [item["id"] for item in body["items"]] == [str(mine.id)]
    assert body["items"][0] == {
        "id": str(mine.id),
        "badge_definition_id": str(org.badge_ids["a"]),
        "code": "a",
        "name": "A",
        "peer_mentor_id": str(org.mentor),
        "organisation_id": str(org.id),
        "earned_at": "2026-03-10T12:00:00Z",
    }
    assert body["next_cursor"] is None


def test_a_mentor_asking_for_another_mentor_is_403(api: Api) -> None:
    org = api.org("a")
    api.award(org, "a", org.other_mentor)
    response = api.client.get(
        LIST, params={"peer_mentor_id": str(org.other_mentor)}, headers=api.mentor(org)
    )
    assert response.status_code == 403


def test_an_org_admin_lists_their_organisation_and_filters_by_mentor(api: Api) -> None:
    org, other = api.org("a"), api.org("a")
    api.award(org, "a")
    api.award(org, "a", org.other_mentor)
    api.award(other, "a")
    everyone = api.client.get(LIST, headers=api.admin(org)).json()["items"]
    assert {i["peer_mentor_id"] for i in everyone} == {str(org.mentor), str(org.other_mentor)}
    assert {i["organisation_id"] for i in everyone} == {str(org.id)}
    one = api.client.get(LIST, params={"peer_mentor_id": str(org.mentor)}, headers=api.admin(org))
    assert [i["peer_mentor_id"] for i in one.json()["items"]] == [str(org.mentor)]


def test_an_org_admin_listing_another_organisation_is_403(api: Api) -> None:
    org, other = api.org("a"), api.org("a")
    api.award(other, "a")
    response = api.client.get(
        LIST, params={"organisation_id": str(other.id)}, headers=api.admin(org)
    )
    assert response.status_code == 403
    assert "items" not in response.json()


def test_the_service_role_names_the_organisation(api: Api) -> None:
    org = api.org("a")
    api.award(org, "a")
    missing = api.client.get(LIST, headers=api.service())
    assert missing.status_code == 422
    assert problem_paths(missing) == ["organisation_id"]
    found = api.client.get(LIST, params={"organisation_id": str(org.id)}, headers=api.service())
    assert [i["code"] for i in found.json()["items"]] == ["a"]


def test_keyset_pagination_walks_every_badge_once(api: Api) -> None:
    org = api.org("a", "b", "c", "d", "e")
    for code in "abcde":
        api.award(org, code)
    seen: list[str] = []
    cursor = None
    pages = 0
    while True:
        params = {"limit": "2", **({"cursor": cursor} if cursor else {})}
        body = api.client.get(LIST, params=params, headers=api.mentor(org)).json()
        pages += 1
        assert len(body["items"]) <= 2
        seen += [i["id"] for i in body["items"]]
        cursor = body["next_cursor"]
        if cursor is None:
            break
    assert pages == 3
    assert len(seen) == len(set(seen)) == 5


@pytest.mark.parametrize(
    ("params", "path"),
    [
        ({"limit": "0"}, "limit"),
        ({"limit": "201"}, "limit"),
        ({"limit": "ten"}, "limit"),
        ({"cursor": "not-a-cursor"}, "cursor"),
        ({"cursor": "WzEsIDJd"}, "cursor"),  # base64 of [1, 2]: valid JSON, not a cursor
        ({"cursor": "x" * 500}, "cursor"),
        ({"peer_mentor_id": "nope"}, "peer_mentor_id"),
        ({"organisation_id": "123"}, "organisation_id"),
    ],
)
def test_invalid_list_parameters_are_422_naming_the_parameter(
    api: Api, params: dict[str, str], path: str
) -> None:
    org = api.org("a")
    response = api.client.get(LIST, params=params, headers=api.admin(org))
    assert response.status_code == 422
    assert problem_paths(response) == [path]
    assert response.json()["errors"][0]["location"] == "query"


def test_the_page_size_defaults_to_50_and_allows_200(api: Api) -> None:
    org = api.org(*[f"b{i}" for i in range(51)])
    for code in org.badge_ids:
        api.award(org, code)
    default = api.client.get(LIST, headers=api.mentor(org)).json()
    assert len(default["items"]) == 50
    assert default["next_cursor"] is not None
    biggest = api.client.get(LIST, params={"limit": "200"}, headers=api.mentor(org)).json()
    assert len(biggest["items"]) == 51
    assert biggest["next_cursor"] is None


# --- read one -----------------------------------------------------------------------


def test_reading_one_badge_by_id(api: Api) -> None:
    org = api.org("a")
    earned = api.award(org, "a")
    for headers in (api.mentor(org), api.admin(org), api.service()):
        response = api.client.get(f"{LIST}/{earned.id}", headers=headers)
        assert response.status_code == 200
        assert response.json()["id"] == str(earned.id)


def test_a_mentor_of_org_a_reading_org_b_badge_by_id_is_404(api: Api) -> None:
    org_a, org_b = api.org("a"), api.org("a")
    theirs = api.award(org_b, "a")
    response = api.client.get(f"{LIST}/{theirs.id}", headers=api.mentor(org_a))
    unknown = api.client.get(f"{LIST}/{uuid.uuid4()}", headers=api.mentor(org_a))
    assert response.status_code == unknown.status_code == 404
    # Indistinguishable from a row that does not exist.
    assert response.json() == unknown.json()


def test_another_mentors_badge_and_another_orgs_badge_are_404(api: Api) -> None:
    org, other = api.org("a"), api.org("a")
    colleagues = api.award(org, "a", org.other_mentor)
    assert api.client.get(f"{LIST}/{colleagues.id}", headers=api.mentor(org)).status_code == 404
    assert api.client.get(f"{LIST}/{colleagues.id}", headers=api.admin(other)).status_code == 404


def test_a_malformed_id_is_422(api: Api) -> None:
    response = api.client.get(f"{LIST}/not-a-uuid", headers=api.service())
    assert response.status_code == 422
    assert response.json()["errors"][0] == {
        "location": "path",
        "path": "earned_badge_id",
        "message": response.json()["errors"][0]["message"],
    }


# --- check --------------------------------------------------------------------------


def test_check_says_whether_a_badge_is_earned(api: Api) -> None:
    org = api.org("a", "b")
    earned = api.award(org, "a")
    for code, expected in (("a", True), ("b", False)):
        response = api.client.get(
            f"{LIST}/check",
            params={
                "badge_definition_id": str(org.badge_ids[code]),
                "peer_mentor_id": str(org.mentor),
            },
            headers=api.mentor(org),
        )
        assert response.status_code == 200
        body = response.json()
        assert body["earned"] is expected
        assert (body["earned_badge"] or {}).get("id") == (str(earned.id) if expected else None)


def test_check_outside_the_callers_scope(api: Api) -> None:
    org, other = api.org("a"), api.org("a")
    api.award(other, "a")
    foreign = {
        "badge_definition_id": str(other.badge_ids["a"]),
        "peer_mentor_id": str(other.mentor),
    }
    assert (
        api.client.get(f"{LIST}/check", params=foreign, headers=api.admin(org)).status_code == 404
    )
    colleague = {
        "badge_definition_id": str(org.badge_ids["a"]),
        "peer_mentor_id": str(org.other_mentor),
    }
    assert (
        api.client.get(f"{LIST}/check", params=colleague, headers=api.mentor(org)).status_code
        == 403
    )
    missing = api.client.get(
        f"{LIST}/check", params={"peer_mentor_id": str(org.mentor)}, headers=api.admin(org)
    )
    assert missing.status_code == 422
    assert problem_paths(missing) == ["badge_definition_id"]


# --- award --------------------------------------------------------------------------


@pytest.mark.usefixtures("push_enabled")
def test_posting_twice_is_201_then_200_with_one_row_and_one_notification(api: Api) -> None:
    org = api.org("a")
    body = {"badge_definition_id": str(org.badge_ids["a"]), "peer_mentor_id": str(org.mentor)}
    first = api.client.post(LIST, json=body, headers=api.admin(org))
    second = api.client.post(LIST, json=body, headers=api.service())
    assert (first.status_code, second.status_code) == (201, 200)
    assert first.json() == second.json()
    assert first.json()["code"] == "a"
    assert first.json()["earned_at"] == "2026-03-10T12:00:00Z"  # the API's clock
    earned_id = uuid.UUID(first.json()["id"])
    assert _count(api.engine, earned_badges, earned_badges.c.peer_mentor_id == org.mentor) == 1
    with api.engine.connect() as c:
        outbox = c.execute(
            select(notification_outbox.c.channel, notification_outbox.c.dispatched_at).where(
                notification_outbox.c.dedup_key == f"badge_earned:{earned_id}"
            )
        ).all()
        audit = c.execute(
            select(badge_audit).where(badge_audit.c.earned_badge_id == earned_id)
        ).all()
    # One notification: one outbox row per channel, dispatched after the commit.
    assert sorted(row.channel for row in outbox) == ["in_app", "push"]
    assert all(row.dispatched_at is not None for row in outbox)
    assert (
        _count(api.engine, notification_outbox, notification_outbox.c.peer_mentor_id == org.mentor)
        == 2
    )
    assert [(a.action, a.actor) for a in audit] == [("manual_award", "api:org_admin:admin")]


@pytest.mark.usefixtures("push_enabled")
def test_an_award_stands_when_notifications_cannot_be_dispatched(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broker_down(refs: object, **_: object) -> None:
        raise ConnectionError("broker unreachable")

    monkeypatch.setattr(dispatch, "dispatch_outbox", broker_down)
    org = api.org("a")
    body = {"badge_definition_id": str(org.badge_ids["a"]), "peer_mentor_id": str(org.mentor)}
    response = api.client.post(LIST, json=body, headers=api.admin(org))
    assert response.status_code == 201
    assert _count(api.engine, earned_badges) == 1
    with api.engine.connect() as c:
        outbox = c.execute(
            select(notification_outbox.c.state, notification_outbox.c.dispatched_at)
        ).all()
    # Left for the outbox relay: pending and never dispatched.
    assert sorted(outbox) == [("pending", None), ("pending", None)]


def test_posting_for_a_badge_the_worker_already_awarded_returns_it(api: Api) -> None:
    org = api.org("a")
    with unit_of_work(api.engine) as conn:
        from api.queries import mentor_organisation  # the mentor becomes known by activity

        ingest_events(
            conn, [IncomingEvent(saved_event(org=org.id, mentor=org.mentor))], clock=FixedClock(NOW)
        )
        assert mentor_organisation(conn, org.mentor) == org.id
    earned = api.award(org, "a")
    body = {"badge_definition_id": str(org.badge_ids["a"]), "peer_mentor_id": str(org.mentor)}
    response = api.client.post(LIST, json=body, headers=api.admin(org))
    assert response.status_code == 200
    assert response.json()["id"] == str(earned.id)


def test_a_mentor_may_not_award(api: Api) -> None:
    org = api.org("a")
    body = {"badge_definition_id": str(org.badge_ids["a"]), "peer_mentor_id": str(org.mentor)}
    assert api.client.post(LIST, json=body, headers=api.mentor(org)).status_code == 403
    assert _count(api.engine, earned_badges) == 0


def test_an_org_admin_cannot_award_another_organisations_badge(api: Api) -> None:
    org, other = api.org("a"), api.org("a")
    body = {"badge_definition_id": str(other.badge_ids["a"]), "peer_mentor_id": str(org.mentor)}
    response = api.client.post(LIST, json=body, headers=api.admin(org))
    unknown = api.client.post(
        LIST, json={**body, "badge_definition_id": str(uuid.uuid4())}, headers=api.admin(org)
    )
    assert response.status_code == unknown.status_code == 404
    assert response.json() == unknown.json()
    assert _count(api.engine, earned_badges) == 0


def test_a_mentor_known_in_another_organisation_cannot_be_awarded_here(api: Api) -> None:
    org, other = api.org("a"), api.org("a")
    with unit_of_work(api.engine) as conn:
        ingest_events(
            conn,
            [IncomingEvent(saved_event(org=other.id, mentor=other.mentor))],
            clock=FixedClock(NOW),
        )
    body = {"badge_definition_id": str(org.badge_ids["a"]), "peer_mentor_id": str(other.mentor)}
    response = api.client.post(LIST, json=body, headers=api.service())
    assert response.status_code == 422
    assert problem_paths(response) == ["$.peer_mentor_id"]


@pytest.mark.parametrize(
    ("body", "paths"),
    [
        ({"peer_mentor_id": "x"}, ["$.badge_definition_id", "$.peer_mentor_id"]),
        (
            {
                "badge_definition_id": str(uuid.uuid4()),
                "peer_mentor_id": str(uuid.uuid4()),
                "extra": 1,
            },
            ["$.extra"],
        ),
        ([], ["$"]),
    ],
)
def test_an_invalid_award_body_is_422_with_json_paths(
    api: Api, body: object, paths: list[str]
) -> None:
    response = api.client.post(LIST, json=body, headers=api.service())
    assert response.status_code == 422
    assert sorted(problem_paths(response)) == paths


def test_a_body_that_is_not_json_is_422(api: Api) -> None:
    response = api.client.post(
        LIST, content=b"{not json", headers={**api.service(), "Content-Type": "application/json"}
    )
    assert response.status_code == 422


# --- revoke -------------------------------------------------------------------------


def test_the_service_role_revokes_with_a_reason_and_an_audit_row(api: Api) -> None:
    org = api.org("a")
    earned = api.award(org, "a")
    response = api.client.delete(
        f"{LIST}/{earned.id}", params={"reason": "awarded by mistake"}, headers=api.service()
    )
    assert response.status_code == 204
    assert response.content == b""
    assert _count(api.engine, earned_badges) == 0
    with api.engine.connect() as c:
        audit = c.execute(
            select(badge_audit).where(
                badge_audit.c.earned_badge_id == earned.id, badge_audit.c.action == "revoked"
            )
        ).one()
    assert (audit.reason, audit.actor, audit.peer_mentor_id) == (
        "awarded by mistake",
        "api:service_role:ops",
        org.mentor,
    )
    again = api.client.delete(
        f"{LIST}/{earned.id}", params={"reason": "again"}, headers=api.service()
    )
    assert again.status_code == 404


def test_only_the_service_role_may_revoke(api: Api) -> None:
    org = api.org("a")
    earned = api.award(org, "a")
    for headers in (api.admin(org), api.mentor(org)):
        response = api.client.delete(
            f"{LIST}/{earned.id}", params={"reason": "no"}, headers=headers
        )
        assert response.status_code == 403
    assert _count(api.engine, earned_badges) == 1


@pytest.mark.parametrize("reason", [None, "", "   "])
def test_revoking_without_a_reason_is_audited_with_a_default(api: Api, reason: str | None) -> None:
    org = api.org("a")
    earned = api.award(org, "a")
    params = {} if reason is None else {"reason": reason}
    response = api.client.delete(f"{LIST}/{earned.id}", params=params, headers=api.service())
    assert response.status_code == 204
    assert _count(api.engine, earned_badges) == 0
    with api.engine.connect() as c:
        audit = c.execute(
            select(badge_audit).where(
                badge_audit.c.earned_badge_id == earned.id, badge_audit.c.action == "revoked"
            )
        ).one()
    assert audit.reason == "revoked through the API (no reason given)"


@pytest.mark.parametrize("reason", ["nul\x00byte", "x" * 501])
def test_a_given_reason_must_be_storable(api: Api, reason: str) -> None:
    org = api.org("a")
    earned = api.award(org, "a")
    response = api.client.delete(
        f"{LIST}/{earned.id}", params={"reason": reason}, headers=api.service()
    )
    assert response.status_code == 422
    assert problem_paths(response) == ["reason"]
    assert _count(api.engine, earned_badges) == 1
