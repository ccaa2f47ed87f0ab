"""The gateway's app factory and entrypoint (``tryon-gateway`` / ``python -m gateway``).

``create_app(settings)`` builds the FastAPI app: routers per resource, RFC 9457 errors, metrics, security
headers, optional CORS, and frontend/ at ``/`` when no nginx is in front (``TRYON_SERVE_FRONTEND``).
``main()`` runs it on Uvicorn with uvloop and httptools.
"""

from __future__ import annotations

import argparse
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import kombu.exceptions
import redis.exceptions
from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from fastapi.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gateway import problems
from gateway.config import GatewaySettings, load_settings
from gateway.context import API_PREFIX, Gateway
from gateway.metrics import MetricsMiddleware
from gateway.routes import examples, files, health, limits, metrics, tryon
from tryon.jobs.storage import LocalStorage, StorageError
from tryon.observability import ObservabilitySettings, celery_hooks, configure_logging, setup_tracing
from tryon.observability.asgi import TracingMiddleware

log = logging.getLogger(__name__)

#: Redis (job records, rate limits, idempotency), the broker (kombu) and storage failing: 503, not 500.
DEPENDENCY_ERRORS: tuple[type[Exception], ...] = (
    redis.exceptions.ConnectionError,
    redis.exceptions.TimeoutError,
    redis.exceptions.BusyLoadingError,
    kombu.exceptions.OperationalError,
    StorageError,
)

#: The page's policy: no inline script or style, nothing from other origins but result images (S3 URLs).
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' blob: data: https:; "
    "connect-src 'self'; object-src 'none'; base-uri 'self'; form-action 'self'; frame-ancestors 'none'"
)
#: Swagger UI (/api/docs) loads from cdn.jsdelivr.net with an inline bootstrap script.
DOCS_CSP = (
    "default-src 'self'; script-src 'self' 'unsafe-inline' https://cdn.jsdelivr.net; "
    "style-src 'self' https://cdn.jsdelivr.net; img-src 'self' data: https:; connect-src 'self'; "
    "object-src 'none'; base-uri 'self'; frame-ancestors 'none'"
)
_SECURITY_HEADERS = [
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
    (b"permissions-policy", b"camera=(), microphone=(), geolocation=()"),
    (b"cross-origin-opener-policy", b"same-origin"),
]

DESCRIPTION = """\
Virtual try-on: submit a photo of a person and a photo of a garment, get the person wearing the garment.

Jobs are asynchronous: `POST /api/tryon` answers 202 with the job; follow it with `GET /api/tryon/{id}`,
the server-sent events at `/api/tryon/{id}/events`, or a webhook. Every error is an RFC 9457
`application/problem+json` document.
"""


class SecurityHeaders:
    """The same headers nginx sets, for when the gateway serves the page itself (nginx hides these)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        csp = (DOCS_CSP if scope["path"] == f"{API_PREFIX}/docs" else CSP).encode()

        async def send_wrapper(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                present = {name.lower() for name, _ in headers}
                headers += [(name, value) for name, value in _SECURITY_HEADERS if name not in present]
                if b"content-security-policy" not in present:
                    headers.append((b"content-security-policy", csp))
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, send_wrapper)


def create_app(settings: GatewaySettings | None = None, *, gateway: Gateway | None = None) -> FastAPI:
    settings = settings or load_settings()
    context = gateway or Gateway(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield
        await context.aclose()

    app = FastAPI(
        title="Virtual try-on API",
        version="1.0.0",
        description=DESCRIPTION,
        openapi_url=f"{API_PREFIX}/openapi.json",
        docs_url=f"{API_PREFIX}/docs",
        redoc_url=None,
        lifespan=lifespan,
    )
    app.state.gateway = context
    problems.install(app, unavailable=DEPENDENCY_ERRORS)

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = problems.document_problems(FastAPI.openapi(app))
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    app.include_router(tryon.router)
    app.include_router(health.router)
    app.include_router(examples.router)
    app.include_router(limits.router)
    app.include_router(metrics.router)
    if isinstance(context.storage, LocalStorage):
        app.include_router(files.files_router(context.files_route))
    if settings.serve_frontend and (settings.frontend_dir / "index.html").is_file():
        app.mount("/", StaticFiles(directory=settings.frontend_dir, html=True), name="frontend")
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_methods=["GET", "POST", "DELETE"],
            allow_headers=["Content-Type", "Idempotency-Key", "X-API-Key", "Authorization", "Last-Event-ID"],
            expose_headers=["Location", "Retry-After", "Idempotent-Replayed"],
            max_age=600,
        )
    app.add_middleware(SecurityHeaders)
    app.add_middleware(TracingMiddleware)
    app.add_middleware(MetricsMiddleware, metrics=context.metrics)
    return app


def _factory() -> FastAPI:
    """Uvicorn's import-string factory, run in each worker process: logging, tracing, settings from env."""
    observability = ObservabilitySettings()
    configure_logging(observability.log_level, json_format=observability.log_json, service="gateway")
    setup_tracing("gateway", observability)
    celery_hooks.install()  # the job id and trace context travel with the enqueued task
    return create_app()


def main(argv: list[str] | None = None) -> None:
    import uvicorn

    parser = argparse.ArgumentParser(prog="tryon-gateway", description="Run the try-on REST gateway.")
    parser.add_argument("--host", help="default: TRYON_HOST or 0.0.0.0")
    parser.add_argument("--port", type=int, help="default: TRYON_PORT or 8000")
    parser.add_argument("--workers", type=int, help="default: TRYON_WORKERS or 1")
    args = parser.parse_args(argv)
    settings = load_settings(host=args.host, port=args.port, workers=args.workers)
    uvicorn.run(
        "gateway.main:_factory",
        factory=True,
        host=settings.host,
        port=settings.port,
        workers=settings.workers,
        loop="uvloop",
        http="httptools",
        proxy_headers=True,
        forwarded_allow_ips=settings.forwarded_allow_ips,
        access_log=settings.access_log,
        log_level=ObservabilitySettings().log_level.lower(),
        timeout_graceful_shutdown=10,
        log_config=None,  # the factory configures logging (job-aware, text or JSON) in each worker
    )


if __name__ == "__main__":
    main()
