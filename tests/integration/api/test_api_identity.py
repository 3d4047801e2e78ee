"""Supabase-shaped tokens through the ASGI app: service role key, HS256 and JWKS user tokens.

Asymmetric keys are generated here and served from a JWKS endpoint on a
loopback port, the way Supabase serves ``/auth/v1/.well-known/jwks.json``.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm, RSAAlgorithm
from sqlalchemy import Engine

from api.app import create_app
from api.identity import IdentityConfigError, TokenVerifier
from tests.integration.api.harness import SECRET, Api, Org, bearer, running_api

LIST = "/api/v1/earned-badges"
AUDIENCE = "authenticated"
ISSUER = "https://abcdefghijklmnop.supabase.co/auth/v1"


class Jwks:
    """A JWKS endpoint on 127.0.0.1 serving the public halves of the keys added to it."""

    def __init__(self) -> None:
        self.keys: list[dict[str, Any]] = []
        self.fetches = 0
        jwks = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                jwks.fetches += 1
                body = json.dumps({"keys": jwks.keys}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/auth/v1/.well-known/jwks.json"

    def add(self, kid: str, private_key: Any, algorithm: str) -> None:
        public = (ECAlgorithm if algorithm == "ES256" else RSAAlgorithm).to_jwk(
            private_key.public_key(), as_dict=True
        )
        self.keys.append({**public, "kid": kid, "use": "sig", "alg": algorithm})

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(scope="module")
def jwks() -> Iterator[Jwks]:
    server = Jwks()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def keys(jwks: Jwks) -> dict[str, Any]:
    """kid -> private key; ``es-1`` and ``rs-1`` are published, ``es-unknown`` never is."""
    private = {
        "es-1": ec.generate_private_key(ec.SECP256R1()),
        "rs-1": rsa.generate_private_key(public_exponent=65537, key_size=2048),
        "es-unknown": ec.generate_private_key(ec.SECP256R1()),
    }
    jwks.add("es-1", private["es-1"], "ES256")
    jwks.add("rs-1", private["rs-1"], "RS256")
    return private


@pytest.fixture
def api(clean_db: Engine, jwks: Jwks, keys: dict[str, Any]) -> Iterator[Api]:
    """The API as a Supabase deployment configures it: secret, JWKS, audience and issuer."""
    identity = TokenVerifier(
        secret=SECRET,
        jwks_url=jwks.url,
        audience=AUDIENCE,
        issuer=ISSUER,
        jwks_refresh_cooldown_s=0,
    )
    with running_api(clean_db, identity=identity) as harness:
        yield harness


def service_role_key(secret: str = SECRET, **changes: Any) -> dict[str, str]:
    """Supabase's service role key: no ``sub``, no ``aud``, issuer ``supabase``."""
    now = int(time.time())
    claims: dict[str, Any] = {"iss": "supabase", "ref": "abcdefghijklmnop", "role": "service_role"}
    claims.update(iat=now, exp=now + 3600, **changes)
    return bearer(jwt.encode(claims, secret, algorithm="HS256"))


def user_claims(
    org: Org | None, role: str | None, sub: uuid.UUID, **changes: Any
) -> dict[str, Any]:
    """A Supabase user access token's claims, with the badges role in ``app_metadata``."""
    now = int(time.time())
    app_metadata: dict[str, Any] = {"provider": "email", "providers": ["email"]}
    if role is not None:
        app_metadata["badges_role"] = role
    if org is not None:
        app_metadata["organisation_id"] = str(org.id)
    claims: dict[str, Any] = {
        "aud": AUDIENCE,
        "iss": ISSUER,
        "sub": str(sub),
        "role": "authenticated",
        "email": "someone@example.org",
        "app_metadata": app_metadata,
        "user_metadata": {},
        "iat": now,
        "exp": now + 3600,
        "session_id": str(uuid.uuid4()),
    }
    return {**claims, **changes}


def hs256(claims: dict[str, Any]) -> dict[str, str]:
    return bearer(jwt.encode(claims, SECRET, algorithm="HS256"))


def signed(claims: dict[str, Any], keys: dict[str, Any], kid: str = "es-1") -> dict[str, str]:
    algorithm = "RS256" if kid.startswith("rs") else "ES256"
    return bearer(jwt.encode(claims, keys[kid], algorithm=algorithm, headers={"kid": kid}))


def _b64(part: dict[str, Any]) -> bytes:
    return base64.urlsafe_b64encode(json.dumps(part).encode()).rstrip(b"=")


def _ids(response: Any) -> set[str]:
    assert response.status_code == 200, response.text
    return {item["id"] for item in response.json()["items"]}


# --- Supabase's service role key ---------------------------------------------------------------


def test_the_service_role_key_without_sub_awards_lists_checks_and_revokes(api: Api) -> None:
    org = api.org("a")
    key = service_role_key()
    badge_id = str(org.badge_ids["a"])
    body = {"badge_definition_id": badge_id, "peer_mentor_id": str(org.mentor)}

    awarded = api.client.post(LIST, json=body, headers=key)
    assert awarded.status_code == 201, awarded.text
    earned_id = awarded.json()["id"]
    assert api.client.post(LIST, json=body, headers=key).status_code == 200
    listed = api.client.get(LIST, params={"organisation_id": str(org.id)}, headers=key)
    assert _ids(listed) == {earned_id}
    check = api.client.get(
        f"{LIST}/check",
        params={"badge_definition_id": badge_id, "peer_mentor_id": str(org.mentor)},
        headers=key,
    )
    assert check.status_code == 200 and check.json()["earned"] is True
    assert api.client.delete(f"{LIST}/{earned_id}", headers=key).status_code == 204
    assert _ids(api.client.get(LIST, params={"organisation_id": str(org.id)}, headers=key)) == set()


def test_a_service_role_key_signed_with_another_secret_is_401(api: Api) -> None:
    forged = service_role_key(secret="another-projects-jwt-secret-of-enough-length")
    response = api.client.get(LIST, params={"organisation_id": str(uuid.uuid4())}, headers=forged)
    assert response.status_code == 401
    assert response.json()["detail"] == "the token is not valid"


def test_a_service_role_token_with_a_foreign_issuer_is_401(api: Api) -> None:
    response = api.client.get(
        LIST,
        params={"organisation_id": str(uuid.uuid4())},
        headers=service_role_key(iss="https://elsewhere.example"),
    )
    assert response.status_code == 401
    assert response.json()["detail"] == "the token's issuer is not trusted"


# --- user access tokens ---------------------------------------------------------------------------


@pytest.mark.parametrize("kid", ["hs256", "es-1", "rs-1"])
def test_a_mentor_user_token_sees_only_the_mentors_own_badges(
    api: Api, keys: dict[str, Any], kid: str
) -> None:
    org = api.org("a", "b")
    own = api.award(org, "a")
    api.award(org, "a", org.other_mentor)
    claims = user_claims(org, "mentor", org.mentor)
    headers = hs256(claims) if kid == "hs256" else signed(claims, keys, kid)

    assert _ids(api.client.get(LIST, headers=headers)) == {str(own.id)}
    other = api.client.get(LIST, params={"peer_mentor_id": str(org.other_mentor)}, headers=headers)
    assert other.status_code == 403
    post = {"badge_definition_id": str(org.badge_ids["b"]), "peer_mentor_id": str(org.mentor)}
    assert api.client.post(LIST, json=post, headers=headers).status_code == 403


def test_the_mentor_id_is_app_metadatas_peer_mentor_id_when_present(
    api: Api, keys: dict[str, Any]
) -> None:
    org = api.org("a")
    own = api.award(org, "a")
    auth_user = uuid.uuid4()  # the Supabase user id differs from the peer mentor id
    claims = user_claims(org, "mentor", auth_user)
    claims["app_metadata"]["peer_mentor_id"] = str(org.mentor)
    assert _ids(api.client.get(LIST, headers=signed(claims, keys))) == {str(own.id)}


def test_an_org_admin_user_token_sees_only_its_organisation(api: Api, keys: dict[str, Any]) -> None:
    org, other = api.org("a"), api.org("a")
    mine = {str(api.award(org, "a").id), str(api.award(org, "a", org.other_mentor).id)}
    theirs = api.award(other, "a")
    headers = signed(user_claims(org, "org_admin", uuid.uuid4()), keys)

    assert _ids(api.client.get(LIST, headers=headers)) == mine
    assert api.client.get(f"{LIST}/{theirs.id}", headers=headers).status_code == 404
    elsewhere = api.client.get(LIST, params={"organisation_id": str(other.id)}, headers=headers)
    assert elsewhere.status_code == 403
    award = {"badge_definition_id": str(other.badge_ids["a"]), "peer_mentor_id": str(uuid.uuid4())}
    assert api.client.post(LIST, json=award, headers=headers).status_code == 404
    assert api.client.delete(f"{LIST}/{theirs.id}", headers=headers).status_code == 403


@pytest.mark.parametrize(
    ("changes", "detail"),
    [
        ({"aud": "some-other-api"}, "the token is not meant for this API (audience)"),
        ({"aud": None}, "the token is not valid"),
        (
            {"iss": "https://another-project.supabase.co/auth/v1"},
            "the token's issuer is not trusted",
        ),
        ({"exp": int(time.time()) - 3600}, "the token has expired"),
    ],
    ids=["wrong-audience", "no-audience", "wrong-issuer", "expired"],
)
def test_user_tokens_with_bad_registered_claims_are_401(
    api: Api, keys: dict[str, Any], changes: dict[str, Any], detail: str
) -> None:
    org = api.org("a")
    claims = {k: v for k, v in {**user_claims(org, "mentor", org.mentor), **changes}.items() if v}
    for headers in (hs256(claims), signed(claims, keys)):
        response = api.client.get(LIST, headers=headers)
        assert response.status_code == 401
        assert response.json()["detail"] == detail


def test_a_token_signed_with_an_unpublished_key_is_401(api: Api, keys: dict[str, Any]) -> None:
    org = api.org("a")
    claims = user_claims(org, "mentor", org.mentor)
    response = api.client.get(LIST, headers=signed(claims, keys, "es-unknown"))
    assert response.status_code == 401
    assert response.json()["detail"] == "the token is not valid"


def test_a_key_published_later_is_fetched_on_its_first_use(
    api: Api, jwks: Jwks, keys: dict[str, Any]
) -> None:
    org = api.org("a")
    claims = user_claims(org, "mentor", org.mentor)
    assert api.client.get(LIST, headers=signed(claims, keys)).status_code == 200
    fetched = jwks.fetches
    assert api.client.get(LIST, headers=signed(claims, keys)).status_code == 200
    assert jwks.fetches == fetched  # cached
    rotated = ec.generate_private_key(ec.SECP256R1())
    jwks.add("es-2", rotated, "ES256")
    token = jwt.encode(claims, rotated, algorithm="ES256", headers={"kid": "es-2"})
    assert api.client.get(LIST, headers=bearer(token)).status_code == 200
    assert jwks.fetches == fetched + 1  # one refresh for the unknown kid


def test_the_token_header_cannot_choose_a_weaker_algorithm(api: Api, keys: dict[str, Any]) -> None:
    """HS256 signed with the published public key (algorithm confusion) and ``none``."""
    org = api.org("a")
    claims = user_claims(org, "org_admin", uuid.uuid4())
    public_pem = (
        keys["rs-1"]
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    signing_input = _b64({"alg": "HS256", "typ": "JWT", "kid": "rs-1"}) + b"." + _b64(claims)
    mac = hmac.new(public_pem, signing_input, hashlib.sha256).digest()
    confused = (signing_input + b"." + base64.urlsafe_b64encode(mac).rstrip(b"=")).decode()
    unsigned = jwt.encode(claims, "", algorithm="none")
    hs384 = jwt.encode(claims, SECRET * 2, algorithm="HS384")
    for token in (confused, unsigned, hs384):
        assert api.client.get(LIST, headers=bearer(token)).status_code == 401


@pytest.mark.parametrize(
    "app_metadata",
    [{}, {"badges_role": "superuser"}, {"badges_role": "service_role"}],
    ids=["none", "unknown", "service-role-in-metadata"],
)
def test_a_user_token_without_a_badges_role_is_403(
    api: Api, keys: dict[str, Any], app_metadata: dict[str, str]
) -> None:
    org = api.org("a")
    claims = user_claims(org, None, org.mentor)
    claims["app_metadata"] = {**claims["app_metadata"], **app_metadata}
    response = api.client.get(LIST, headers=signed(claims, keys))
    assert response.status_code == 403
    assert "badges role" in response.json()["detail"]


def test_a_user_token_without_an_organisation_is_401(api: Api, keys: dict[str, Any]) -> None:
    org = api.org("a")
    response = api.client.get(LIST, headers=signed(user_claims(None, "mentor", org.mentor), keys))
    assert response.status_code == 401
    assert response.json()["detail"] == "the token's claims are not valid"


def test_project_tokens_need_sub_only_for_mentors(api: Api) -> None:
    org = api.org("a")
    exp = int(time.time()) + 3600
    admin = {"role": "org_admin", "organisation_id": str(org.id), "aud": AUDIENCE, "iss": ISSUER}
    assert api.client.get(LIST, headers=hs256({**admin, "exp": exp})).status_code == 200
    mentor = {**admin, "role": "mentor", "exp": exp}
    assert api.client.get(LIST, headers=hs256(mentor)).status_code == 401


# --- configuration ---------------------------------------------------------------------------------


def test_a_secret_shorter_than_32_bytes_stops_the_api_from_starting() -> None:
    with pytest.raises(IdentityConfigError, match="at least 32 bytes"):
        create_app(jwt_secret="only-31-bytes-long-0123456789ab")
    assert TokenVerifier(secret="x" * 32).configured
    started = subprocess.run(
        [sys.executable, "-c", "import api.app"],
        env={**os.environ, "API_JWT_SECRET": "short"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert started.returncode != 0
    assert "API_JWT_SECRET is 5 bytes long; it must be at least 32 bytes" in started.stderr


def test_with_only_a_jwks_url_hs256_tokens_are_refused(
    clean_db: Engine, jwks: Jwks, keys: dict[str, Any]
) -> None:
    identity = TokenVerifier(jwks_url=jwks.url)
    admin = {
        "role": "authenticated",
        "sub": str(uuid.uuid4()),
        "app_metadata": {"badges_role": "org_admin", "organisation_id": str(uuid.uuid4())},
        "exp": int(time.time()) + 3600,
    }
    with running_api(clean_db, jwt_secret="", identity=identity) as api:
        assert api.client.get(LIST, headers=hs256(admin)).status_code == 401
        assert api.client.get(LIST, headers=signed(admin, keys)).status_code == 200


@pytest.mark.parametrize("endpoint", ["unreachable", "empty"])
def test_a_key_endpoint_without_keys_is_503_not_a_pass(
    clean_db: Engine, keys: dict[str, Any], endpoint: str
) -> None:
    empty = Jwks()
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    url = f"http://127.0.0.1:{port}/jwks.json" if endpoint == "unreachable" else empty.url
    identity = TokenVerifier(jwks_url=url)
    admin = {
        "role": "authenticated",
        "sub": str(uuid.uuid4()),
        "app_metadata": {"badges_role": "org_admin", "organisation_id": str(uuid.uuid4())},
        "exp": int(time.time()) + 3600,
    }
    try:
        with running_api(clean_db, jwt_secret="", identity=identity) as api:
            response = api.client.get(LIST, headers=signed(admin, keys))
    finally:
        empty.stop()
    assert response.status_code == 503
    assert response.json()["detail"] == "the token signing keys cannot be fetched now"
