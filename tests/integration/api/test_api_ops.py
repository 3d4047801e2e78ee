"""Health, metrics, the served OpenAPI spec, and the worker's independence from the API."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import create_engine

from api.app import create_app
from tests.integration.api.harness import SECRET, Api

ROOT = Path(__file__).resolve().parents[3]


def test_health_reports_database_and_broker_with_timings(api: Api) -> None:
    response = api.client.get("/health")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ok"
    assert set(body["checks"]) == {"database", "broker"}
    for check in body["checks"].values():
        assert check["status"] == "ok"
        assert check["duration_ms"] >= 0


def test_health_is_503_when_the_database_is_unreachable() -> None:
    # Port 1 on loopback: nothing listens there, the connection is refused at once.
    unreachable = create_engine("postgresql+psycopg://postgres@127.0.0.1:1/none")
    with TestClient(create_app(jwt_secret=SECRET, engine=unreachable)) as client:
        response = client.get("/health")
        metrics = client.get("/metrics").text
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "error"
    assert body["checks"]["database"]["status"] == "error"
    assert body["checks"]["database"]["error"] == "OperationalError"
    assert body["checks"]["broker"]["status"] == "ok"
    assert 'badges_component_up{component="database"} 0.0' in metrics


def _metric(text: str, line_start: str) -> float:
    values = [
        float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(line_start)
    ]
    return sum(values)


@pytest.mark.usefixtures("push_enabled")
def test_metrics_count_requests_awards_outbox_and_queues(api: Api) -> None:
    org = api.org("a")
    before = api.client.get("/metrics").text
    body = {"badge_definition_id": str(org.badge_ids["a"]), "peer_mentor_id": str(org.mentor)}
    assert (
        api.client.post("/api/v1/earned-badges", json=body, headers=api.service()).status_code
        == 201
    )
    assert (
        api.client.post("/api/v1/earned-badges", json=body, headers=api.service()).status_code
        == 200
    )
    api.client.get(f"/api/v1/earned-badges/{org.badge_ids['a']}", headers=api.service())
    response = api.client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    text = response.text
    created = 'badges_api_awards_total{outcome="created"}'
    existing = 'badges_api_awards_total{outcome="existing"}'
    assert _metric(text, created) == _metric(before, created) + 1
    assert _metric(text, existing) == _metric(before, existing) + 1
    # Requests are labelled by route template, never by concrete id.
    route = 'badges_api_requests_total{method="GET",route="/api/v1/earned-badges/{earned_badge_id}",status="404"}'
    assert _metric(text, route) >= 1
    assert str(org.badge_ids["a"]) not in text
    assert 'badges_earned_badges{source="manual"} 1.0' in text
    # The two outbox rows (in-app and push) wait in the broker for a worker.
    in_app = _metric(text, 'badges_outbox_rows{channel="in_app"')
    push = _metric(text, 'badges_outbox_rows{channel="push"')
    assert (in_app, push) == (1.0, 1.0)
    assert 'badges_queue_depth{queue="notifications"}' in text
    assert 'badges_component_up{component="broker"} 1.0' in text


def test_the_openapi_spec_and_docs_are_served(api: Api) -> None:
    spec = api.client.get("/openapi.json")
    assert spec.status_code == 200
    paths = spec.json()["paths"]
    assert {
        "/api/v1/earned-badges",
        "/api/v1/earned-badges/{earned_badge_id}",
        "/api/v1/earned-badges/check",
        "/api/v1/badge-definitions",
        "/api/v1/badge-definitions/validate",
        "/api/v1/tiers",
        "/api/v1/tiers/validate",
        "/api/v1/award-periods",
        "/api/v1/award-periods/validate",
        "/api/v1/peer-mentors/{peer_mentor_id}/year-summary",
        "/api/v1/notifications",
        "/api/v1/notifications/{notification_id}/read",
        "/health",
        "/metrics",
    } <= set(paths)
    assert set(paths["/api/v1/earned-badges/{earned_badge_id}"]) == {"get", "delete"}
    assert spec.json()["components"]["securitySchemes"]["HTTPBearer"]["scheme"] == "bearer"
    assert api.client.get("/docs").status_code == 200


def test_an_unknown_route_is_a_problem_document(api: Api) -> None:
    response = api.client.get("/api/v1/nothing-here")
    assert response.status_code == 404
    assert response.headers["content-type"].startswith("application/problem+json")
    assert response.json()["status"] == 404


def test_the_celery_worker_does_not_import_the_api() -> None:
    code = (
        "import sys, celeryconfig, worker.app, worker.tasks, worker.cli\n"
        "leaked = sorted(m for m in sys.modules if m == 'api' or m.startswith('api.'))\n"
        "assert not leaked, leaked\n"
        "assert 'fastapi' not in sys.modules\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=dict(os.environ), capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr


def test_the_procfile_serves_the_api_on_port() -> None:
    lines = (ROOT / "Procfile").read_text().splitlines()
    assert "web: uvicorn api.app:app --host 0.0.0.0 --port $PORT" in lines
    assert {line.split(":", 1)[0] for line in lines if line.strip()} >= {
        "web",
        "worker",
        "beat",
        "release",
    }
