"""A mentor's notifications: listing (unread filter, newest first, pages) and marking read."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest

from tests.integration.api.harness import NOW, Api, problem_paths

LIST = "/api/v1/notifications"


def test_a_mentor_lists_their_own_notifications_newest_first(api: Api) -> None:
    org, other = api.org(), api.org()
    old = api.notification(org, at=NOW - timedelta(days=2), read=True)
    new = api.notification(org, at=NOW - timedelta(days=1))
    api.notification(org, org.other_mentor)
    api.notification(other)
    everything = api.client.get(LIST, headers=api.mentor(org)).json()
    assert [n["id"] for n in everything["items"]] == [str(new), str(old)]
    assert everything["items"][0]["payload"] == {"code": "x"}
    assert everything["items"][0]["read_at"] is None
    unread = api.client.get(LIST, params={"unread": "true"}, headers=api.mentor(org)).json()
    assert [n["id"] for n in unread["items"]] == [str(new)]
    read = api.client.get(LIST, params={"unread": "false"}, headers=api.mentor(org)).json()
    assert [n["id"] for n in read["items"]] == [str(old)]


def test_an_org_admin_sees_the_organisation_and_a_mentor_only_themselves(api: Api) -> None:
    org, other = api.org(), api.org()
    api.notification(org)
    api.notification(org, org.other_mentor)
    api.notification(other)
    items = api.client.get(LIST, headers=api.admin(org)).json()["items"]
    assert {n["peer_mentor_id"] for n in items} == {str(org.mentor), str(org.other_mentor)}
    assert (
        api.client.get(
            LIST, params={"organisation_id": str(other.id)}, headers=api.admin(org)
        ).status_code
        == 403
    )
    colleague = {"peer_mentor_id": str(org.other_mentor)}
    assert api.client.get(LIST, params=colleague, headers=api.mentor(org)).status_code == 403


def test_pages_of_notifications(api: Api) -> None:
    org = api.org()
    ids = [api.notification(org, at=NOW - timedelta(minutes=i)) for i in range(5)]
    seen: list[str] = []
    cursor = None
    while True:
        params = {"limit": "2", **({"cursor": cursor} if cursor else {})}
        body = api.client.get(LIST, params=params, headers=api.mentor(org)).json()
        seen += [n["id"] for n in body["items"]]
        cursor = body["next_cursor"]
        if cursor is None:
            break
    assert seen == [str(i) for i in ids]


@pytest.mark.parametrize(
    ("params", "path"),
    [
        ({"cursor": "garbage"}, "cursor"),
        ({"limit": "500"}, "limit"),
        ({"unread": "maybe"}, "unread"),
    ],
)
def test_invalid_notification_parameters_are_422(
    api: Api, params: dict[str, str], path: str
) -> None:
    org = api.org()
    response = api.client.get(LIST, params=params, headers=api.mentor(org))
    assert response.status_code == 422
    assert problem_paths(response) == [path]


def test_marking_read_is_idempotent_and_keeps_the_first_time(api: Api) -> None:
    org = api.org()
    notification = api.notification(org)
    first = api.client.post(f"{LIST}/{notification}/read", headers=api.mentor(org))
    assert first.status_code == 200
    assert first.json()["read_at"] == "2026-03-10T12:00:00Z"
    again = api.client.post(f"{LIST}/{notification}/read", headers=api.mentor(org))
    assert again.json() == first.json()
    unread = api.client.get(LIST, params={"unread": "true"}, headers=api.mentor(org)).json()
    assert unread["items"] == []


def test_marking_someone_elses_notification_is_404(api: Api) -> None:
    org, other = api.org(), api.org()
    colleagues = api.notification(org, org.other_mentor)
    foreign = api.notification(other)
    assert api.client.post(f"{LIST}/{colleagues}/read", headers=api.mentor(org)).status_code == 404
    assert api.client.post(f"{LIST}/{foreign}/read", headers=api.admin(org)).status_code == 404
    assert api.client.post(f"{LIST}/{uuid.uuid4()}/read", headers=api.service()).status_code == 404
    assert api.client.post(f"{LIST}/nope/read", headers=api.service()).status_code == 422
    unread = api.client.get(LIST, params={"unread": "true"}, headers=api.admin(other)).json()
    assert [n["id"] for n in unread["items"]] == [str(foreign)]
