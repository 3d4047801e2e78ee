"""``GET /api/v1/peer-mentors/{id}/year-summary``: the service's summary, scoped per role."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime

import pytest
from sqlalchemy import Engine

from tests.helpers import badge, saved_event, threshold, weeks
from tests.integration.api.harness import NOW, Api, Org, problem_paths, running_api
from tests.integration.harness import apply
from worker.core.clock import FixedClock
from worker.core.settings import get_settings
from worker.db.unit_of_work import unit_of_work
from worker.ingestion.ingest import IncomingEvent, ingest_events
from worker.tiers.reevaluation import reevaluate_tiers
from worker.tiers.summary import year_summary

TIER = {"min_streak": 1, "activity_types": []}


def _url(mentor: uuid.UUID) -> str:
    return f"/api/v1/peer-mentors/{mentor}/year-summary"


def _active_mentor(api: Api) -> Org:
    """A mentor with three sessions in 2026, a bronze tier and a badge in progress."""
    org = api.org("first")
    apply(
        api.engine,
        {
            "badges": [
                badge(org.id, "first", threshold(1)),
                badge(org.id, "ten", threshold(10, "peer_session")),
            ],
            "tiers": [
                {"organisation_id": str(org.id), "level": "bronze", "min_assignments": 2, **TIER},
                {"organisation_id": str(org.id), "level": "silver", "min_assignments": 6, **TIER},
            ],
            "award_periods": [
                {
                    "organisation_id": str(org.id),
                    "name": "2026",
                    "start_date": "2026-01-01",
                    "end_date": "2026-12-31",
                }
            ],
        },
    )
    clock = FixedClock(NOW)
    events = [saved_event(org=org.id, mentor=org.mentor, day=d) for d in weeks(date(2026, 1, 5), 3)]
    with unit_of_work(api.engine) as conn:
        ingest_events(conn, [IncomingEvent(e) for e in events], clock=clock)
        reevaluate_tiers(conn, clock=clock, tz=UTC, full=True)
    return org


def test_a_mentor_reads_their_year(api: Api) -> None:
    org = _active_mentor(api)
    response = api.client.get(_url(org.mentor), params={"year": "2026"}, headers=api.mentor(org))
    assert response.status_code == 200
    body = response.json()
    assert body["activity_counts"] == {"peer_session": 3}
    assert body["tier"] == "bronze"
    assert body["next_tier"] == "silver"
    assert 0.0 <= body["progress_to_next_tier"] < 1.0
    assert [b["code"] for b in body["badges"]] == ["first"]
    progress = {p["code"]: (p["current"], p["target"]) for p in body["badge_progress"]}
    assert progress == {"ten": (3, 10)}
    # The API adds nothing of its own: it is the service's summary, as JSON.
    with api.engine.connect() as conn:
        expected = year_summary(conn, org.mentor, 2026, clock=FixedClock(NOW), tz=get_settings().tz)
    assert body == expected.model_dump(mode="json")


def test_the_year_defaults_to_the_current_one(api: Api) -> None:
    org = _active_mentor(api)
    body = api.client.get(_url(org.mentor), headers=api.admin(org)).json()
    assert body["year"] == NOW.year
    earlier = api.client.get(
        _url(org.mentor), params={"year": "2025"}, headers=api.service()
    ).json()
    assert (earlier["year"], earlier["activity_counts"], earlier["badges"]) == (2025, {}, [])


def test_a_summary_outside_the_callers_scope_is_404(api: Api) -> None:
    org = _active_mentor(api)
    other = api.org("x")
    colleague = api.client.get(_url(org.mentor), headers=api.mentor(org, org.other_mentor))
    foreign_admin = api.client.get(_url(org.mentor), headers=api.admin(other))
    unknown = api.client.get(_url(uuid.uuid4()), headers=api.service())
    assert colleague.status_code == foreign_admin.status_code == unknown.status_code == 404
    assert foreign_admin.json() == unknown.json()


@pytest.mark.parametrize(("year", "path"), [("1969", "year"), ("2101", "year"), ("twenty", "year")])
def test_an_invalid_year_is_422(api: Api, year: str, path: str) -> None:
    response = api.client.get(_url(uuid.uuid4()), params={"year": year}, headers=api.service())
    assert response.status_code == 422
    assert problem_paths(response) == [path]


def test_a_malformed_mentor_id_is_422(api: Api) -> None:
    response = api.client.get("/api/v1/peer-mentors/42/year-summary", headers=api.service())
    assert response.status_code == 422
    assert problem_paths(response) == ["peer_mentor_id"]


def test_the_default_year_is_the_local_year(clean_db: Engine) -> None:
    """At 23:30 UTC on New Year's Eve it is already next year in Oslo."""
    assert get_settings().timezone == "Europe/Oslo"
    with running_api(clean_db, now=datetime(2025, 12, 31, 23, 30, tzinfo=UTC)) as api:
        org = _active_mentor(api)
        body = api.client.get(_url(org.mentor), headers=api.mentor(org)).json()
    assert body["year"] == 2026
