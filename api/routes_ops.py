"""Probes and metrics: ``/livez``, ``/readyz``, ``/health`` and ``/metrics``.

``/livez`` answers while the process serves requests and touches nothing
else, so a database outage never makes an orchestrator restart healthy web
processes; ``/readyz`` (and ``/health``, its older name with timings)
answers 200 only when PostgreSQL and the broker answer, so traffic is routed
away from a process that cannot serve it.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from sqlalchemy import text

from api import broker
from api.context import Context
from api.metrics import render
from api.schemas import Check, Health

router = APIRouter(tags=["operations"])


def _timed(probe: Callable[[], object]) -> Check:
    started = time.perf_counter()
    try:
        probe()
    except Exception as exc:
        elapsed = (time.perf_counter() - started) * 1000
        return Check(status="error", duration_ms=round(elapsed, 3), error=type(exc).__name__)
    elapsed = (time.perf_counter() - started) * 1000
    return Check(status="ok", duration_ms=round(elapsed, 3))


@router.get(
    "/livez",
    summary="Liveness: the process serves requests (touches no dependency; no token needed)",
)
def livez() -> dict[str, str]:
    return {"status": "ok"}


#: Readiness and health answer the same: 503 while a dependency is unreachable.
_DEPENDENCIES: dict[str, Any] = {
    "response_model": Health,
    "responses": {503: {"model": Health, "description": "A dependency is unreachable"}},
}


@router.get(
    "/readyz",
    summary="Readiness: the database and the broker answer (no token needed)",
    **_DEPENDENCIES,
)
@router.get(
    "/health",
    summary="Is the database and the broker reachable? (no token needed)",
    **_DEPENDENCIES,
)
def health(context: Context) -> JSONResponse:
    def database() -> None:
        with context.database.connect() as conn:
            conn.execute(text("SELECT 1"))

    checks = {"database": _timed(database), "broker": _timed(broker.ping)}
    ok = all(c.status == "ok" for c in checks.values())
    body = Health(status="ok" if ok else "error", checks=checks)
    return JSONResponse(body.model_dump(mode="json"), status_code=200 if ok else 503)


@router.get(
    "/metrics",
    summary="Prometheus metrics (text exposition format; no token needed)",
    response_class=Response,
    responses={200: {"content": {"text/plain": {"schema": {"type": "string"}}}}},
)
def metrics(request: Request) -> Response:
    return Response(
        render(request.app.state.metrics_registry),
        media_type="text/plain; version=0.0.4; charset=utf-8",
    )
