"""Verifying bearer tokens: the project's own, Supabase's service role key and user tokens.

Three token shapes are accepted (see :func:`principal_from_claims`):

* the project's own: ``role`` = ``service_role`` | ``org_admin`` | ``mentor``,
  ``organisation_id``, ``sub`` (required only for a mentor: their peer mentor id);
* Supabase's service role key: ``role`` = ``service_role``, ``iss`` =
  ``supabase``, ``ref``, no ``sub``;
* Supabase user access tokens: ``role`` = ``authenticated`` with
  ``app_metadata.badges_role`` (``mentor`` | ``org_admin``) and
  ``app_metadata.organisation_id``; the mentor id is
  ``app_metadata.peer_mentor_id`` when present, else ``sub``.

Keys: HS256 only with ``API_JWT_SECRET`` (at least 32 bytes: a shorter secret
can be brute-forced offline from one captured token, so the API refuses to
start), ES256/RS256 only with keys from ``API_JWKS_URL``, chosen by the
token's ``kid``.  The algorithm a token may use follows from the key that
verifies it, never from its own header: an HS256 token is never checked
against a public key, and ``none`` is never accepted.

``API_JWT_AUDIENCE`` / ``API_JWT_ISSUER``, when set, are enforced on every
token except a ``service_role`` token signed with the secret: Supabase's
service role key carries no ``aud`` and ``iss`` is ``supabase``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from uuid import UUID

import jwt
from jwt.types import Options

from api.auth import Principal, Role, unauthorized
from api.problems import ApiProblem, forbidden

#: HMAC secrets shorter than this are refused (RFC 7518 §3.2: key >= hash size).
MIN_SECRET_BYTES = 32
SYMMETRIC_ALGORITHMS = frozenset({"HS256"})
ASYMMETRIC_ALGORITHMS = frozenset({"ES256", "RS256"})
#: The issuer Supabase puts in its service role (and anon) keys.
SUPABASE_KEY_ISSUER = "supabase"
#: Tolerated clock difference between the token issuer and this server.
LEEWAY_S = 30
#: How long a fetched JWKS is trusted before it is fetched again.
JWKS_LIFESPAN_S = 300.0
#: At most one forced JWKS refresh per this many seconds for unknown ``kid``s,
#: so a flood of tokens with made-up key ids cannot hammer the key endpoint.
JWKS_REFRESH_COOLDOWN_S = 30.0
JWKS_TIMEOUT_S = 5.0
#: Roles a Supabase user may hold in ``app_metadata.badges_role``.
USER_ROLES = {"mentor": Role.MENTOR, "org_admin": Role.ORG_ADMIN}


class IdentityConfigError(ValueError):
    """The token settings are unusable; the API must not start with them."""


@dataclass(frozen=True)
class _Key:
    key: Any
    algorithm: str
    symmetric: bool


class TokenVerifier:
    """Verifies bearer tokens with the configured secret and/or JWKS endpoint."""

    def __init__(
        self,
        *,
        secret: str | None = None,
        jwks_url: str | None = None,
        audience: str | None = None,
        issuer: str | None = None,
        jwks_refresh_cooldown_s: float = JWKS_REFRESH_COOLDOWN_S,
        leeway_s: int = LEEWAY_S,
    ) -> None:
        if secret and len(secret.encode()) < MIN_SECRET_BYTES:
            raise IdentityConfigError(
                f"API_JWT_SECRET is {len(secret.encode())} bytes long; it must be at least "
                f"{MIN_SECRET_BYTES} bytes (e.g. `openssl rand -base64 48`). "
                "The API does not start with a secret that short."
            )
        self.secret = secret or None
        self.audience = audience or None
        self.issuer = issuer or None
        self.leeway_s = leeway_s
        self.jwks: jwt.PyJWKClient | None = None
        if jwks_url:
            try:
                self.jwks = jwt.PyJWKClient(
                    jwks_url,
                    cache_jwk_set=True,
                    lifespan=JWKS_LIFESPAN_S,
                    timeout=JWKS_TIMEOUT_S,
                    cooldown_duration=jwks_refresh_cooldown_s,
                )
            except jwt.PyJWKClientError as exc:
                raise IdentityConfigError(f"API_JWKS_URL is not usable: {exc}") from None

    @property
    def configured(self) -> bool:
        return self.secret is not None or self.jwks is not None

    def verify(self, token: str) -> Principal:
        """The caller a token names; a 401 problem when it is not valid, 403 without a role."""
        key = self._key_for(token)
        payload = self._decode(token, key)
        return principal_from_claims(payload)

    def _key_for(self, token: str) -> _Key:
        try:
            header = jwt.get_unverified_header(token)
        except jwt.InvalidTokenError:
            raise unauthorized("the token is not valid") from None
        algorithm = header.get("alg")
        if algorithm in SYMMETRIC_ALGORITHMS and self.secret is not None:
            return _Key(self.secret, "HS256", symmetric=True)
        if algorithm in ASYMMETRIC_ALGORITHMS and self.jwks is not None:
            try:
                signing_key = self.jwks.get_signing_key_from_jwt(token)
            except (jwt.PyJWKClientConnectionError, jwt.PyJWKSetError, json.JSONDecodeError):
                # Unreachable, or no usable key set: the keys' side, not the token's.
                raise ApiProblem(
                    503, "Service Unavailable", "the token signing keys cannot be fetched now"
                ) from None
            except (jwt.PyJWKClientError, jwt.InvalidTokenError):
                raise unauthorized("the token is not valid") from None
            # The key decides the algorithm: an EC key verifies ES256, an RSA key RS256.
            if signing_key.algorithm_name not in ASYMMETRIC_ALGORITHMS:
                raise unauthorized("the token is not valid")
            return _Key(signing_key.key, signing_key.algorithm_name, symmetric=False)
        raise unauthorized("the token is not valid")

    def _decode(self, token: str, key: _Key) -> dict[str, Any]:
        try:
            unverified = jwt.decode(token, options={"verify_signature": False})
        except jwt.InvalidTokenError:
            raise unauthorized("the token is not valid") from None
        service_key = key.symmetric and unverified.get("role") == Role.SERVICE.value
        required = ["exp", "role"]
        options: Options = {"require": required}
        audience = None if service_key else self.audience
        if audience is None:
            options["verify_aud"] = False
        issuers: list[str] | None = None
        if self.issuer is not None:
            issuers = [self.issuer, SUPABASE_KEY_ISSUER] if service_key else [self.issuer]
            required.append("iss")
        try:
            payload: dict[str, Any] = jwt.decode(
                token,
                key.key,
                algorithms=[key.algorithm],
                audience=audience,
                issuer=issuers,
                options=options,
                leeway=self.leeway_s,
            )
        except jwt.ExpiredSignatureError:
            raise unauthorized("the token has expired") from None
        except jwt.InvalidAudienceError:
            raise unauthorized("the token is not meant for this API (audience)") from None
        except jwt.InvalidIssuerError:
            raise unauthorized("the token's issuer is not trusted") from None
        except jwt.InvalidTokenError:
            raise unauthorized("the token is not valid") from None
        return payload


def principal_from_claims(payload: Mapping[str, Any]) -> Principal:
    """Map verified claims to the caller; a 401 for malformed claims, 403 without a role."""
    role = payload.get("role")
    if role == Role.SERVICE.value:
        subject = payload.get("sub") or payload.get("ref") or Role.SERVICE.value
        return Principal(Role.SERVICE, None, _text(subject))
    if role in (Role.ORG_ADMIN.value, Role.MENTOR.value):
        return _scoped(Role(role), payload.get("organisation_id"), payload.get("sub"))
    if role == "authenticated":
        metadata = payload.get("app_metadata")
        metadata = metadata if isinstance(metadata, Mapping) else {}
        badges_role = USER_ROLES.get(str(metadata.get("badges_role")))
        if badges_role is None:
            raise forbidden("this user has no badges role (app_metadata.badges_role)")
        subject = payload.get("sub")
        if badges_role is Role.MENTOR:
            subject = metadata.get("peer_mentor_id") or subject
        return _scoped(badges_role, metadata.get("organisation_id"), subject)
    raise _invalid_claims()


def _scoped(role: Role, organisation_id: object, subject: object) -> Principal:
    """An org admin or mentor: the organisation is required, a mentor's subject is a UUID."""
    try:
        if not isinstance(organisation_id, str):
            raise ValueError("no organisation")
        organisation = UUID(organisation_id)
        if role is Role.MENTOR:
            # A mentor's subject is their peer mentor id; an admin's only names them in audits.
            subject = str(UUID(subject if isinstance(subject, str) else ""))
    except ValueError:
        raise _invalid_claims() from None
    return Principal(role, organisation, _text(subject) if subject else role.value)


def _text(value: object) -> str:
    return value if isinstance(value, str) else str(value)


def _invalid_claims() -> ApiProblem:
    return unauthorized("the token's claims are not valid")
