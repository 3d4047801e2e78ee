"""Badge definitions, tiers and award periods over HTTP: the CLI's validation, scoped writes."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import select

from schema.tables import badge_definitions, recognition_tiers
from tests.helpers import badge, streak, threshold
from tests.integration.api.harness import Api, Org, problem_paths
from worker.model.criteria import RAW_WARNING

DEFS = "/api/v1/badge-definitions"
TIERS = "/api/v1/tiers"
PERIODS = "/api/v1/award-periods"
RAW = {"type": "raw", "version": 1, "raw": {"rule": "helped at the summer camp"}}


def _codes(api: Api, org: Org) -> list[str]:
    with api.engine.connect() as c:
        return list(
            c.scalars(
                select(badge_definitions.c.code)
                .where(badge_definitions.c.organisation_id == org.id)
                .order_by(badge_definitions.c.code)
            )
        )


# --- badge definitions ----------------------------------------------------------------


def test_get_lists_the_organisations_definitions_for_every_role(api: Api) -> None:
    org, other = api.org("a", "b"), api.org("c")
    for headers in (api.admin(org), api.mentor(org)):
        body = api.client.get(DEFS, headers=headers).json()
        assert [d["code"] for d in body["items"]] == ["a", "b"]
        assert body["items"][0]["criteria"] == threshold(1000)
        assert body["items"][0]["id"] == str(org.badge_ids["a"])
        assert body["warnings"] == []
    served = api.client.get(DEFS, params={"organisation_id": str(other.id)}, headers=api.service())
    assert [d["code"] for d in served.json()["items"]] == ["c"]


def test_get_for_another_organisation_is_403(api: Api) -> None:
    org, other = api.org("a"), api.org("c")
    response = api.client.get(
        DEFS, params={"organisation_id": str(other.id)}, headers=api.admin(org)
    )
    assert response.status_code == 403


def test_put_creates_and_updates_and_is_idempotent(api: Api) -> None:
    org = api.org("a")
    items = [
        badge(org.id, "a", threshold(5, "peer_session"), description="five sessions"),
        badge(org.id, "weekly", streak("week", 4)),
    ]
    first = api.client.put(DEFS, json={"items": items}, headers=api.admin(org))
    assert first.status_code == 200
    assert first.json() == {
        "dry_run": False, "changed": 2, "warnings": [], "evaluation_enqueued": True, "preview": [],
    }  # fmt: skip
    again = api.client.put(DEFS, json={"items": items}, headers=api.admin(org))
    assert again.json()["changed"] == 0
    listed = {d["code"]: d for d in api.client.get(DEFS, headers=api.admin(org)).json()["items"]}
    assert listed["a"]["criteria"]["min_count"] == 5
    assert listed["a"]["description"] == "five sessions"
    assert listed["a"]["id"] == str(org.badge_ids["a"])  # same natural key, same id
    assert listed["weekly"]["criteria"]["period"] == "week"


def test_validate_is_a_dry_run(api: Api) -> None:
    org = api.org("a")
    items = [badge(org.id, "new-one", threshold(3))]
    response = api.client.post(f"{DEFS}/validate", json={"items": items}, headers=api.admin(org))
    assert response.status_code == 200
    body = response.json()
    assert body["dry_run"] is True and body["changed"] == 1 and body["warnings"] == []
    assert body["evaluation_enqueued"] is False
    assert [(p["code"], p["newly_earned"], p["lost"]) for p in body["preview"]] == [
        ("new-one", 0, 0)
    ]
    assert _codes(api, org) == ["a"]


@pytest.mark.parametrize("url", [DEFS, f"{DEFS}/validate"])
@pytest.mark.parametrize(
    ("item", "path"),
    [
        ({"criteria": threshold(0)}, "$.items[1].criteria.min_count"),
        (
            {"criteria": {"type": "threshold", "version": 2, "min_count": 1}},
            "$.items[1].criteria.version",
        ),
        ({"criteria": {"type": "magic", "version": 1}}, "$.items[1].criteria"),
        ({"code": "Not A Code"}, "$.items[1].code"),
        ({"colour": "gold"}, "$.items[1].colour"),
        ({"name": "nul\x00byte"}, "$.items[1].name"),
        (
            {
                "criteria": {
                    "type": "all_of",
                    "version": 1,
                    "criteria": [
                        {"type": "streak", "version": 1, "period": "day", "min_length": 2}
                    ],
                }
            },
            "$.items[1].criteria.criteria[0].period",
        ),
    ],
)
def test_invalid_definitions_are_422_with_the_json_path_and_nothing_is_written(
    api: Api, url: str, item: dict[str, Any], path: str
) -> None:
    org = api.org("a")
    items = [badge(org.id, "good", threshold(1)), {**badge(org.id, "bad", threshold(1)), **item}]
    response = api.client.request(
        "PUT" if url == DEFS else "POST", url, json={"items": items}, headers=api.admin(org)
    )
    assert response.status_code == 422
    assert path in problem_paths(response)
    assert _codes(api, org) == ["a"]


def test_duplicates_and_unknown_organisations_are_422_with_paths(api: Api) -> None:
    org = api.org("a")
    duplicated = [badge(org.id, "x", threshold(1)), badge(org.id, "x", threshold(2))]
    response = api.client.put(DEFS, json={"items": duplicated}, headers=api.admin(org))
    assert response.status_code == 422
    assert problem_paths(response) == ["$.items[1]"]
    assert "duplicates" in response.json()["errors"][0]["message"]

    unknown = Org()
    response = api.client.put(
        DEFS, json={"items": [badge(unknown.id, "x", threshold(1))]}, headers=api.service()
    )
    assert response.status_code == 422
    assert problem_paths(response) == ["$.items[0].organisation_id"]
    assert "unknown organisation" in response.json()["errors"][0]["message"]


def test_an_org_admin_writes_only_their_organisation(api: Api) -> None:
    org, other = api.org("a"), api.org("c")
    items = [badge(org.id, "mine", threshold(1)), badge(other.id, "theirs", threshold(1))]
    response = api.client.put(DEFS, json={"items": items}, headers=api.admin(org))
    assert response.status_code == 403
    assert problem_paths(response) == ["$.items[1].organisation_id"]
    assert _codes(api, org) == ["a"]
    assert _codes(api, other) == ["c"]


def test_a_mentor_may_not_write_configuration(api: Api) -> None:
    org = api.org("a")
    for url, method in (
        (DEFS, "PUT"),
        (f"{DEFS}/validate", "POST"),
        (TIERS, "PUT"),
        (PERIODS, "PUT"),
    ):
        response = api.client.request(method, url, json={"items": []}, headers=api.mentor(org))
        assert response.status_code == 403


def test_raw_criteria_are_for_org_admins_with_a_warning(api: Api) -> None:
    org = api.org("a")
    items = [
        badge(org.id, "camp", {"type": "all_of", "version": 1, "criteria": [threshold(1), RAW]})
    ]
    refused = api.client.put(DEFS, json={"items": items}, headers=api.service())
    assert refused.status_code == 403
    assert problem_paths(refused) == ["$.items[0].criteria"]
    assert _codes(api, org) == ["a"]

    dry = api.client.post(f"{DEFS}/validate", json={"items": items}, headers=api.admin(org))
    assert dry.json()["warnings"] == [{"path": "$.items[0].criteria", "message": RAW_WARNING}]
    stored = api.client.put(DEFS, json={"items": items}, headers=api.admin(org))
    assert stored.status_code == 200
    assert stored.json()["warnings"] == [{"path": "$.items[0].criteria", "message": RAW_WARNING}]
    listed = api.client.get(DEFS, headers=api.admin(org)).json()
    assert [d["code"] for d in listed["items"]] == ["a", "camp"]
    assert listed["warnings"] == [{"path": "$.items[1].criteria", "message": RAW_WARNING}]
    assert listed["items"][1]["criteria"]["criteria"][1] == RAW


def test_raw_criteria_may_hold_any_json_but_no_nul(api: Api) -> None:
    org = api.org("a")
    items = [badge(org.id, "odd", {**RAW, "raw": {"list": [1, "two\x00"]}})]
    response = api.client.put(DEFS, json={"items": items}, headers=api.admin(org))
    assert response.status_code == 422
    assert problem_paths(response) == ["$.items[0].criteria.raw.list[1]"]


# --- tiers ------------------------------------------------------------------------------


def _tier(org: Org, level: Any, **extra: Any) -> dict[str, Any]:
    return {
        "organisation_id": str(org.id),
        "level": level,
        "min_assignments": 10,
        "min_streak": 2,
        **extra,
    }


def test_tiers_put_get_and_validate(api: Api) -> None:
    org = api.org("a")
    items = [_tier(org, "gold", activity_types=["peer_session"]), _tier(org, 1, min_assignments=2)]
    dry = api.client.post(f"{TIERS}/validate", json={"items": items}, headers=api.admin(org))
    assert dry.json() == {
        "dry_run": True, "changed": 2, "warnings": [], "evaluation_enqueued": False, "preview": [],
    }  # fmt: skip
    assert api.client.get(TIERS, headers=api.admin(org)).json() == {"items": []}
    stored = api.client.put(TIERS, json={"items": items}, headers=api.admin(org))
    assert stored.json()["changed"] == 2
    listed = api.client.get(TIERS, headers=api.mentor(org)).json()["items"]
    assert [(t["level"], t["min_assignments"], t["activity_types"]) for t in listed] == [
        ("bronze", 2, []),
        ("gold", 10, ["peer_session"]),
    ]
    with api.engine.connect() as c:
        assert sorted(c.scalars(select(recognition_tiers.c.level))) == [1, 3]


@pytest.mark.parametrize(
    ("item", "path"),
    [
        ({"level": "diamond"}, "$.items[0].level"),
        ({"level": 7}, "$.items[0].level"),
        ({"min_streak": -1}, "$.items[0].min_streak"),
        ({"activity_types": ["Peer Session"]}, "$.items[0].activity_types[0]"),
    ],
)
def test_invalid_tiers_are_422_with_paths(api: Api, item: dict[str, Any], path: str) -> None:
    org = api.org("a")
    response = api.client.put(
        TIERS, json={"items": [{**_tier(org, "gold"), **item}]}, headers=api.admin(org)
    )
    assert response.status_code == 422
    assert path in problem_paths(response)


# --- award periods ----------------------------------------------------------------------


def _period(org: Org, name: str, start: str, end: str, **extra: Any) -> dict[str, Any]:
    return {
        "organisation_id": str(org.id),
        "name": name,
        "start_date": start,
        "end_date": end,
        **extra,
    }


def test_award_periods_put_and_get_with_computed_activity(api: Api) -> None:
    org = api.org("a")
    items = [
        _period(org, "2026", "2026-01-01", "2026-12-31"),
        _period(org, "2025", "2025-01-01", "2025-12-31"),
        _period(org, "paused", "2026-01-01", "2026-12-31", is_active=False),
    ]
    assert (
        api.client.put(PERIODS, json={"items": items}, headers=api.admin(org)).json()["changed"]
        == 3
    )
    listed = api.client.get(PERIODS, headers=api.admin(org)).json()["items"]
    # The harness clock says 2026-03-10.
    assert [(p["name"], p["is_active"], p["is_currently_active"]) for p in listed] == [
        ("2025", True, False),
        ("2026", True, True),
        ("paused", False, False),
    ]


def test_a_period_ending_before_it_starts_is_422(api: Api) -> None:
    org = api.org("a")
    items = [_period(org, "2026", "2026-12-31", "2026-01-01")]
    response = api.client.post(f"{PERIODS}/validate", json={"items": items}, headers=api.admin(org))
    assert response.status_code == 422
    assert problem_paths(response) == ["$.items[0]"]
    assert "before start_date" in response.json()["errors"][0]["message"]
