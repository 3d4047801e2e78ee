"""The ASGI application: ``uvicorn api.app:app``.

:func:`create_app` builds an app with an injectable secret (or token
verifier), clock and engine (tests pin them); the module-level ``app`` reads them from
``worker.core.settings``.  The OpenAPI spec is served at ``/openapi.json`` and
browsable at ``/docs``.
"""

from __future__ import annotations

import logging.config
from typing import Any

from fastapi import FastAPI
from sqlalchemy import Engine

from api import (
    problems,
    routes_config,
    routes_earned,
    routes_mentors,
    routes_notifications,
    routes_ops,
)
from api.context import ApiContext
from api.identity import TokenVerifier
from api.metrics import RequestMetricsMiddleware, build_registry
from worker.core.clock import Clock, SystemClock
from worker.core.settings import get_settings
from worker.observability.logging import uvicorn_log_config

API_VERSION = "1.0.0"


def create_app(
    *,
    jwt_secret: str | None = None,
    clock: Clock | None = None,
    engine: Engine | None = None,
    identity: TokenVerifier | None = None,
) -> FastAPI:
    """The app; raises :class:`~api.identity.IdentityConfigError` on unusable token settings."""
    # The Celery app installs the sender that delivers notifications after commit.
    import worker.app  # noqa: F401

    settings = get_settings()
    context = ApiContext(
        identity=identity
        or TokenVerifier(
            secret=jwt_secret if jwt_secret is not None else settings.api_jwt_secret,
            jwks_url=settings.api_jwks_url,
            audience=settings.api_jwt_audience,
            issuer=settings.api_jwt_issuer,
        ),
        clock=clock or SystemClock(),
        tz=settings.tz,
        engine=engine,
    )
    app = FastAPI(
        title="Peer-mentor recognition API",
        version=API_VERSION,
        description=(
            "Earned badges, badge configuration and mentor views. Authenticate with "
            "`Authorization: Bearer <JWT>` (the project's own tokens, a Supabase service "
            "role key or a Supabase user access token); errors are RFC 9457 problem details."
        ),
    )
    app.state.api = context
    app.state.metrics_registry = build_registry(context)
    problems.install(app)
    app.add_middleware(RequestMetricsMiddleware)
    for module in (routes_earned, routes_config, routes_mentors, routes_notifications, routes_ops):
        app.include_router(module.router)
    _problem_media_type_only(app)
    return app


def _problem_media_type_only(app: FastAPI) -> None:
    """Document error bodies as ``application/problem+json`` only.

    FastAPI lists a ``responses`` model under ``application/json`` as well; the
    API never answers errors with that media type, so the spec should not say so.
    """
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            spec = build()
            for operations in spec.get("paths", {}).values():
                for operation in operations.values():
                    for status, response in operation.get("responses", {}).items():
                        content = response.get("content", {})
                        if status[0] in "45" and problems.PROBLEM_MEDIA_TYPE in content:
                            content.pop("application/json", None)
            _tier_level_by_name(spec)
            app.openapi_schema = spec
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


if get_settings().log_format == "json":
    # uvicorn set up its loggers before importing the app; send them through the JSON handler.
    logging.config.dictConfig(uvicorn_log_config("json"))
app = create_app()


def _tier_level_by_name(spec: dict[str, Any]) -> None:
    """Tier levels are accepted by name too (``gold``), as in the YAML files and GET output."""
    schemas = spec.get("components", {}).get("schemas", {})
    for schema_name, field in (("TierConfig", "level"), ("TierCriterion", "min_tier")):
        properties = schemas.get(schema_name, {}).get("properties", {})
        if field in properties:
            properties[field] = {
                "anyOf": [
                    properties[field],
                    {"type": "string", "enum": ["bronze", "silver", "gold", "platinum"]},
                ],
                "description": "bronze=1, silver=2, gold=3, platinum=4 (name or number)",
            }
