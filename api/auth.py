"""Bearer-token authentication (HS256 JWTs) and the scope rules.

Claims: ``role`` (``service_role`` | ``org_admin`` | ``mentor``),
``organisation_id``, ``sub`` (the mentor id for mentors) and ``exp``.  A
missing, expired, forged or malformed token is a 401.  Scope:

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
from typing import Annotated, Any, Self
from uuid import UUID

import jwt
from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, ConfigDict, ValidationError, model_validator

from api.problems import ApiProblem, FieldProblem, forbidden, invalid

#: The only accepted algorithm: never trust the token's own ``alg`` header.
ALGORITHM = "HS256"
#: Tolerated clock difference between the token issuer and this server.
LEEWAY_S = 30


class Role(StrEnum):
    SERVICE = "service_role"
    ORG_ADMIN = "org_admin"
    MENTOR = "mentor"


class Claims(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")

    role: Role
    organisation_id: UUID | None = None
    sub: str
    exp: int

    @model_validator(mode="after")
    def _scoped_roles_name_their_scope(self) -> Self:
        if self.role is not Role.SERVICE and self.organisation_id is None:
            raise ValueError(f"role {self.role} needs an organisation_id claim")
        if self.role is Role.MENTOR:
            UUID(self.sub)  # a mentor's subject is their peer mentor id
        return self


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


def decode_token(token: str, secret: str, *, leeway_s: int = LEEWAY_S) -> Principal:
    """Verify signature and expiry, validate the claims; raise a 401 problem otherwise."""
    try:
        payload: dict[str, Any] = jwt.decode(
            token,
            secret,
            algorithms=[ALGORITHM],
            options={"require": ["exp", "role", "sub"]},
            leeway=leeway_s,
        )
    except jwt.ExpiredSignatureError:
        raise unauthorized("the token has expired") from None
    except jwt.InvalidTokenError:
        raise unauthorized("the token is not valid") from None
    try:
        claims = Claims.model_validate(payload)
    except ValidationError:
        raise unauthorized("the token's claims are not valid") from None
    return Principal(claims.role, claims.organisation_id, claims.sub)


def issue_token(
    secret: str,
    *,
    role: Role | str,
    organisation_id: UUID | None = None,
    sub: str | UUID = "service",
    ttl_s: int = 3600,
    now: float | None = None,
) -> str:
    """A signed token (for tests, the docs' curl examples and ops scripts)."""
    issued = int(now if now is not None else time.time())
    claims: dict[str, Any] = {
        "role": str(Role(role).value),
        "sub": str(sub),
        "iat": issued,
        "exp": issued + ttl_s,
    }
    if organisation_id is not None:
        claims["organisation_id"] = str(organisation_id)
    return jwt.encode(claims, secret, algorithm=ALGORITHM)


_bearer = HTTPBearer(auto_error=False, description="An HS256 JWT signed with API_JWT_SECRET")


def current_principal(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Principal:
    """FastAPI dependency: the verified caller of this request."""
    secret: str | None = request.app.state.api.jwt_secret
    if not secret:
        raise ApiProblem(503, "Service Unavailable", "API_JWT_SECRET is not configured")
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise ApiProblem(
            401,
            "Unauthorized",
            "a bearer token is required",
            headers={"WWW-Authenticate": "Bearer"},
        )
    return decode_token(credentials.credentials, secret)


CurrentPrincipal = Annotated[Principal, Depends(current_principal)]
