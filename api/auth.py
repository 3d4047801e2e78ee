"""Bearer-token authentication and the scope rules.

Which tokens are accepted, and how they are verified, is in
:mod:`api.identity`.  A missing, expired, forged or malformed token is a 401;
a valid user token without a badges role is a 403.  Scope:

* a **mentor** sees only their own data, inside their organisation;
* an **org admin** sees only their organisation's data;
* the **service role** sees everything.

Rows outside the caller's scope are answered exactly like rows that do not
exist (404), so a token never learns that another organisation's row exists.
Asking explicitly for another organisation or mentor in a query is a 403.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING, Annotated, Any
from uuid import UUID

import jwt
from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from api.problems import ApiProblem, FieldProblem, forbidden, invalid

if TYPE_CHECKING:
    from api.identity import TokenVerifier

#: Tokens this module issues (for tests, demos, ops scripts) are HS256.
ALGORITHM = "HS256"


class Role(StrEnum):
    SERVICE = "service_role"
    ORG_ADMIN = "org_admin"
    MENTOR = "mentor"


@dataclass(frozen=True)
class Principal:
    """Who is calling, and what they may see."""

    role: Role
    organisation_id: UUID | None
    subject: str

    @property
    def mentor_id(self) -> UUID | None:
        return UUID(self.subject) if self.role is Role.MENTOR else None

    @property
    def actor(self) -> str:
        """How the caller is named in audit rows."""
        return f"api:{self.role.value}:{self.subject}"[:200]

    def can_see_organisation(self, organisation_id: UUID) -> bool:
        """May this caller see an organisation-wide row (a badge definition, a tier)?"""
        return self.role is Role.SERVICE or organisation_id == self.organisation_id

    def can_see_mentor(self, organisation_id: UUID, peer_mentor_id: UUID) -> bool:
        """May this caller see a row about one mentor (an earned badge, a notification)?"""
        if not self.can_see_organisation(organisation_id):
            return False
        return self.role is not Role.MENTOR or peer_mentor_id == self.mentor_id

    def require(self, *roles: Role) -> None:
        if self.role not in roles:
            allowed = ", ".join(r.value for r in roles)
            raise forbidden(f"this needs one of the roles: {allowed}")

    def organisation_scope(self, requested: UUID | None) -> UUID:
        """The organisation a list is scoped to: the caller's own unless service role."""
        if self.role is Role.SERVICE:
            if requested is None:
                raise invalid(
                    "the service role must name the organisation",
                    [FieldProblem(location="query", path="organisation_id", message="required")],
                )
            return requested
        assert self.organisation_id is not None
        if requested is not None and requested != self.organisation_id:
            raise forbidden("this token is limited to its own organisation")
        return self.organisation_id

    def mentor_scope(self, requested: UUID | None) -> UUID | None:
        """The mentor a list is scoped to: always the caller for a mentor."""
        if self.role is not Role.MENTOR:
            return requested
        if requested is not None and requested != self.mentor_id:
            raise forbidden("a mentor token sees only the mentor's own data")
        return self.mentor_id


def unauthorized(detail: str) -> ApiProblem:
    return ApiProblem(
        401, "Unauthorized", detail, headers={"WWW-Authenticate": 'Bearer error="invalid_token"'}
    )


def issue_token(
    secret: str,
    *,
    role: Role | str,
    organisation_id: UUID | None = None,
    sub: str | UUID = "service",
    ttl_s: int = 3600,
    now: float | None = None,
    audience: str | None = None,
    issuer: str | None = None,
) -> str:
    """A signed token (for tests, the docs' curl examples and ops scripts).

    Pass the configured ``API_JWT_AUDIENCE`` / ``API_JWT_ISSUER`` when they are
    set: the API then requires them on every token but a service role key.
    """
    issued = int(now if now is not None else time.time())
    claims: dict[str, Any] = {
        "role": str(Role(role).value),
        "sub": str(sub),
        "iat": issued,
        "exp": issued + ttl_s,
    }
    if organisation_id is not None:
        claims["organisation_id"] = str(organisation_id)
    if audience:
        claims["aud"] = audience
    if issuer:
        claims["iss"] = issuer
    return jwt.encode(claims, secret, algorithm=ALGORITHM)


_bearer = HTTPBearer(
    auto_error=False,
    description="A JWT: HS256 signed with API_JWT_SECRET, or ES256/RS256 with a key of API_JWKS_URL",
)


def current_principal(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Principal:
    """FastAPI dependency: the verified caller of this request."""
    verifier: TokenVerifier = request.app.state.api.identity
    if not verifier.configured:
        raise ApiProblem(
            503, "Service Unavailable", "neither API_JWT_SECRET nor API_JWKS_URL is configured"
        )
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise ApiProblem(
            401,
            "Unauthorized",
            "a bearer token is required",
            headers={"WWW-Authenticate": "Bearer"},
        )
    return verifier.verify(credentials.credentials)


CurrentPrincipal = Annotated[Principal, Depends(current_principal)]
