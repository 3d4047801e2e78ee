"""Bearer-token authentication: every failure is a 401 problem, never a peek at data."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid

import jwt
import pytest
from sqlalchemy import Engine

from api.auth import issue_token
from tests.integration.api.harness import NOW, SECRET, Api, bearer, running_api

LIST = "/api/v1/earned-badges"


def _assert_401(api: Api, headers: dict[str, str]) -> dict[str, object]:
    response = api.client.get(LIST, headers=headers)
    assert response.status_code == 401
    assert response.headers["content-type"].startswith("application/problem+json")
    assert response.headers["www-authenticate"].startswith("Bearer")
    body: dict[str, object] = response.json()
    assert body["status"] == 401
    assert "items" not in body
    return body


def test_a_missing_token_is_401(api: Api) -> None:
    assert _assert_401(api, {})["detail"] == "a bearer token is required"


def test_a_non_bearer_scheme_is_401(api: Api) -> None:
    _assert_401(api, {"Authorization": "Basic dXNlcjpwYXNz"})


def test_a_forged_token_is_401(api: Api) -> None:
    org = api.org("a")
    forged = issue_token(
        "someone-elses-secret-of-sufficient-length-0123456789",
        role="org_admin",
        organisation_id=org.id,
        sub="admin",
    )
    assert _assert_401(api, bearer(forged))["detail"] == "the token is not valid"


def test_a_tampered_payload_is_401(api: Api) -> None:
    org = api.org("a")
    token = issue_token(SECRET, role="mentor", organisation_id=org.id, sub=org.mentor)
    header, _, signature = token.split(".")
    other = jwt.encode({"role": "service_role", "sub": "x", "exp": 4102444800}, "k" * 40)
    tampered = ".".join([header, other.split(".")[1], signature])
    _assert_401(api, bearer(tampered))


def test_an_expired_token_is_401(api: Api) -> None:
    org = api.org("a")
    expired = issue_token(
        SECRET, role="org_admin", organisation_id=org.id, sub="admin", ttl_s=60, now=1_000_000
    )
    assert _assert_401(api, bearer(expired))["detail"] == "the token has expired"


def test_an_unsigned_token_is_401(api: Api) -> None:
    unsigned = jwt.encode(
        {"role": "service_role", "sub": "x", "exp": int(NOW.timestamp()) + 3600},
        key="",
        algorithm="none",
    )
    _assert_401(api, bearer(unsigned))


@pytest.mark.parametrize(
    "claims",
    [
        {"role": "superuser", "sub": "x"},  # unknown role
        {"role": "org_admin", "sub": "admin"},  # org admin without organisation
        {"role": "mentor", "sub": "not-a-uuid", "organisation_id": str(uuid.uuid4())},
        {"role": "mentor", "sub": str(uuid.uuid4()), "organisation_id": "nope"},
        {"sub": "x"},  # no role
    ],
)
def test_tokens_with_invalid_claims_are_401(api: Api, claims: dict[str, str]) -> None:
    token = jwt.encode({**claims, "exp": 4102444800}, SECRET, algorithm="HS256")
    _assert_401(api, bearer(token))


def test_a_token_without_expiry_is_401(api: Api) -> None:
    token = jwt.encode({"role": "service_role", "sub": "x"}, SECRET, algorithm="HS256")
    _assert_401(api, bearer(token))


def test_a_valid_token_is_accepted(api: Api) -> None:
    org = api.org("a")
    response = api.client.get(LIST, headers=api.admin(org))
    assert response.status_code == 200
    assert response.json() == {"items": [], "next_cursor": None}


def test_without_a_configured_secret_requests_are_refused_not_let_through(
    clean_db: Engine,
) -> None:
    with running_api(clean_db, jwt_secret="") as api:
        response = api.client.get(LIST, headers=api.service())
    assert response.status_code == 503
    assert response.json()["detail"] == "neither API_JWT_SECRET nor API_JWKS_URL is configured"


def test_the_token_helper_issues_tokens_the_api_accepts(api: Api) -> None:
    org = api.org("a")
    env = {**os.environ, "API_JWT_SECRET": SECRET}
    command = [sys.executable, "-m", "api.token", "--role", "mentor", "--org", str(org.id)]
    issued = subprocess.run(
        [*command, "--sub", str(org.mentor)], env=env, capture_output=True, text=True, check=True
    )
    response = api.client.get(LIST, headers=bearer(issued.stdout.strip()))
    assert response.status_code == 200
    refused = subprocess.run([*command, "--sub", "nobody"], env=env, capture_output=True, text=True)
    assert refused.returncode == 2
    assert "peer mentor id" in refused.stderr
