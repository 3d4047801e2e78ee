"""Errors as RFC 9457 problem details (``application/problem+json``).

Every error the API returns has the same shape: ``type``, ``title``,
``status``, ``detail`` and, for validation, ``errors``: one entry per offending
field with its location (``body``, ``query``, ``path``, ``header``) and its
path (a JSONPath such as ``$.items[0].criteria.min_count`` into the body, or
the parameter's name).  Nothing raises through to a bare 500: unexpected
errors are logged and answered with a problem that reveals nothing.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any, Literal

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

from worker.core.validation import field_path

log = logging.getLogger(__name__)

PROBLEM_MEDIA_TYPE = "application/problem+json"
Location = Literal["body", "query", "path", "header", "cookie"]


class FieldProblem(BaseModel):
    location: Location
    path: str = Field(description="JSONPath into the body, or the parameter name")
    message: str


class Problem(BaseModel):
    type: str = "about:blank"
    title: str
    status: int
    detail: str | None = None
    errors: list[FieldProblem] | None = None


class ApiProblem(Exception):
    """Raise to answer with a problem document."""

    def __init__(
        self,
        status: int,
        title: str,
        detail: str | None = None,
        *,
        errors: Sequence[FieldProblem] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(detail or title)
        self.problem = Problem(
            title=title, status=status, detail=detail, errors=list(errors) if errors else None
        )
        self.headers = headers


def not_found(what: str) -> ApiProblem:
    return ApiProblem(404, "Not Found", f"{what} not found")


def forbidden(detail: str, errors: Sequence[FieldProblem] | None = None) -> ApiProblem:
    return ApiProblem(403, "Forbidden", detail, errors=errors)


def invalid(detail: str, errors: Sequence[FieldProblem] | None = None) -> ApiProblem:
    return ApiProblem(422, "Unprocessable Content", detail, errors=errors)


def body_path(*parts: int | str) -> str:
    """``body_path("items", 0, "name")`` -> ``$.items[0].name``."""
    path = field_path(parts)
    return f"$.{path}" if path and not path.startswith("[") else f"${path}"


def problem_response(problem: Problem, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse(
        problem.model_dump(exclude_none=True),
        status_code=problem.status,
        media_type=PROBLEM_MEDIA_TYPE,
        headers=headers,
    )


def _field_problem(error: dict[str, Any]) -> FieldProblem:
    loc = tuple(error.get("loc", ()))
    where = loc[0] if loc and loc[0] in ("body", "query", "path", "header", "cookie") else "body"
    rest = loc[1:] if loc and loc[0] == where else loc
    message = str(error.get("msg", "invalid")).removeprefix("Value error, ")
    if where == "body":
        return FieldProblem(location="body", path=body_path(*rest), message=message)
    return FieldProblem(location=where, path=field_path(rest) or where, message=message)


def _validation_problem(exc: RequestValidationError) -> Problem:
    errors = [_field_problem(e) for e in exc.errors()]
    return Problem(
        title="Unprocessable Content",
        status=422,
        detail=f"{len(errors)} invalid field(s)",
        errors=errors,
    )


def install(app: FastAPI) -> None:
    """Route every error through problem details."""

    @app.exception_handler(ApiProblem)
    async def _api_problem(_: Request, exc: ApiProblem) -> JSONResponse:
        return problem_response(exc.problem, exc.headers)

    @app.exception_handler(RequestValidationError)
    async def _request_invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        return problem_response(_validation_problem(exc))

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        title = _TITLES.get(exc.status_code, "Error")
        detail = exc.detail if isinstance(exc.detail, str) and exc.detail != title else None
        return problem_response(
            Problem(title=title, status=exc.status_code, detail=detail),
            dict(exc.headers) if exc.headers else None,
        )

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return problem_response(
            Problem(title="Internal Server Error", status=500, detail="unexpected error; logged")
        )


_TITLES = {
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    406: "Not Acceptable",
    415: "Unsupported Media Type",
    422: "Unprocessable Content",
    500: "Internal Server Error",
    503: "Service Unavailable",
}


def problem_docs(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` entries for the given error statuses."""
    descriptions = {
        401: "Missing, expired or invalid bearer token",
        403: "The token's role or organisation does not allow this",
        404: "Not found (or not visible to this token)",
        409: "Conflict",
        422: "Invalid parameters or body; `errors` names each offending field",
        503: "Service unavailable",
    }
    return {
        status: {
            "model": Problem,
            "description": descriptions.get(status, _TITLES.get(status, "Error")),
            "content": {PROBLEM_MEDIA_TYPE: {"schema": {"$ref": "#/components/schemas/Problem"}}},
        }
        for status in statuses
    }
