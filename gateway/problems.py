"""RFC 9457 problem details: every error the gateway answers is ``application/problem+json``.

Routes raise :class:`Problem`; FastAPI's validation errors, Starlette's HTTP errors (404 for unknown paths,
405 for wrong methods) and unexpected exceptions are converted by the handlers :func:`install` registers.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

log = logging.getLogger(__name__)

PROBLEM_MEDIA_TYPE = "application/problem+json"
#: Problem types are URNs (stable names, listed in docs/API.md), not links that could go stale.
TYPE_BASE = "urn:tryon:problem:"

_TITLES = {
    400: "Bad request",
    401: "API key required",
    403: "Forbidden",
    404: "Not found",
    405: "Method not allowed",
    406: "Not acceptable",
    409: "Conflict",
    411: "Length required",
    413: "Upload too large",
    415: "Unsupported image format",
    422: "Invalid request",
    429: "Too many requests",
    500: "Internal server error",
    503: "Service unavailable",
}


class FieldError(BaseModel):
    field: str = Field(description="The request field (form field, query parameter or header) at fault.")
    message: str = Field(description="What is wrong with it.")


class ProblemDetails(BaseModel):
    """An error, as RFC 9457 describes it."""

    type: str = Field(description="A URI naming the kind of problem (documented in docs/API.md).")
    title: str = Field(description="Short summary of the kind of problem.")
    status: int = Field(description="The HTTP status code.")
    detail: str = Field(description="What went wrong with this request, for a person to read.")
    instance: str | None = Field(default=None, description="The request path.")
    errors: list[FieldError] = Field(default_factory=list, description="Per-field errors (422).")

    model_config = {
        "json_schema_extra": {
            "examples": [
                {
                    "type": TYPE_BASE + "invalid-image",
                    "title": "Invalid image",
                    "status": 422,
                    "detail": "person: image of 40x40 is too small (the short side must be at least 128 px)",
                    "instance": "/api/tryon",
                    "errors": [{"field": "person", "message": "image of 40x40 is too small"}],
                }
            ]
        }
    }


class Problem(Exception):
    """Raise to answer with a problem document."""

    def __init__(
        self,
        status: int,
        detail: str,
        *,
        kind: str | None = None,
        title: str | None = None,
        errors: list[FieldError] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.kind = kind
        self.title = title or _TITLES.get(status, "Error")
        self.errors = errors or []
        self.headers = headers or {}

    @classmethod
    def field(cls, status: int, field: str, message: str, *, kind: str, title: str | None = None) -> Problem:
        return cls(
            status,
            f"{field}: {message}",
            kind=kind,
            title=title,
            errors=[FieldError(field=field, message=message)],
        )


def problem_response(
    request: Request | None,
    status: int,
    detail: str,
    *,
    kind: str | None = None,
    title: str | None = None,
    errors: list[FieldError] | None = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    body = ProblemDetails(
        type=TYPE_BASE + kind if kind else "about:blank",
        title=title or _TITLES.get(status, "Error"),
        status=status,
        detail=detail,
        instance=request.url.path if request is not None else None,
        errors=errors or [],
    )
    return JSONResponse(
        body.model_dump(exclude_none=True), status_code=status, media_type=PROBLEM_MEDIA_TYPE, headers=headers
    )


def _location(loc: tuple[Any, ...] | list[Any]) -> str:
    parts = [str(part) for part in loc]
    if parts and parts[0] in {"body", "query", "path", "header", "cookie"}:
        parts = parts[1:]
    return ".".join(parts) or "request"


async def _on_problem(request: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, Problem)
    return problem_response(
        request, error.status, error.detail, kind=error.kind, title=error.title, errors=error.errors,
        headers=error.headers,
    )  # fmt: skip


async def _on_validation(request: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, RequestValidationError)
    errors = [
        FieldError(field=_location(item.get("loc", ())), message=str(item.get("msg", "")))
        for item in error.errors()
    ]
    detail = "; ".join(f"{item.field}: {item.message}" for item in errors) or "the request is not valid"
    return problem_response(request, 422, detail, kind="invalid-request", errors=errors)


async def _on_http(request: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, StarletteHTTPException)
    detail = error.detail if isinstance(error.detail, str) else str(error.detail)
    if error.status_code == 404 and detail == "Not Found":
        detail = f"no resource at {request.url.path}"
    elif error.status_code == 405 and detail == "Method Not Allowed":
        detail = f"{request.method} is not allowed on {request.url.path}"
    return problem_response(request, error.status_code, detail, headers=dict(error.headers or {}))


#: Failures of what the gateway depends on (Redis, the broker, storage): transient, so 503 + Retry-After.
UNAVAILABLE_RETRY_AFTER_S = 5


async def _on_dependency_down(request: Request, error: Exception) -> JSONResponse:
    log.warning("%s %s: a dependency failed: %s", request.method, request.url.path, error)
    return problem_response(
        request, 503, f"a service the API needs is unavailable ({type(error).__name__}); try again shortly",
        kind="dependency-unavailable", headers={"Retry-After": str(UNAVAILABLE_RETRY_AFTER_S)},
    )  # fmt: skip


async def _on_unexpected(request: Request, error: Exception) -> JSONResponse:
    log.exception("unhandled error on %s %s", request.method, request.url.path)
    return problem_response(
        request, 500, "the server failed to answer; the error was logged", kind="internal"
    )


def install(app: FastAPI, *, unavailable: tuple[type[Exception], ...] = ()) -> None:
    """Register the handlers; ``unavailable`` lists the exception types of dependencies being down."""
    app.add_exception_handler(Problem, _on_problem)
    for error_type in unavailable:
        app.add_exception_handler(error_type, _on_dependency_down)
    app.add_exception_handler(RequestValidationError, _on_validation)
    app.add_exception_handler(StarletteHTTPException, _on_http)
    app.add_exception_handler(Exception, _on_unexpected)


def responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI declarations of the problem responses a route may give."""
    return {
        status: {
            "description": _TITLES.get(status, "Error"),
            "content": {PROBLEM_MEDIA_TYPE: {"schema": {"$ref": "#/components/schemas/ProblemDetails"}}},
        }
        for status in statuses
    }


def document_problems(schema: dict[str, Any]) -> dict[str, Any]:
    """Make the OpenAPI document tell the truth about errors: FastAPI declares its own 422 body
    (HTTPValidationError, application/json); this gateway answers every error as ProblemDetails."""
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    problem_schema = ProblemDetails.model_json_schema(ref_template="#/components/schemas/{model}")
    components.update(problem_schema.pop("$defs", {}))
    components["ProblemDetails"] = problem_schema
    problem_content = {PROBLEM_MEDIA_TYPE: {"schema": {"$ref": "#/components/schemas/ProblemDetails"}}}
    for operations in schema.get("paths", {}).values():
        for operation in operations.values():
            for response in operation.get("responses", {}).values():
                content = response.get("content", {})
                if "HTTPValidationError" in str(content):
                    response["content"] = problem_content
                    response["description"] = _TITLES[422]
    for name in ("HTTPValidationError", "ValidationError"):
        components.pop(name, None)
    return schema
