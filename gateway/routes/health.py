"""Liveness and readiness (Kubernetes probes, compose health checks, load balancers)."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from gateway.context import API_PREFIX
from gateway.deps import GatewayDep
from gateway.schemas import Health, Readiness

router = APIRouter(prefix=API_PREFIX, tags=["health"])


@router.get("/health", response_model=Health, summary="Liveness", description="200 while the process serves.")
async def health() -> Health:
    return Health(status="ok")


@router.get(
    "/ready",
    response_model=Readiness,
    summary="Readiness",
    description="200 when Redis (job records), the broker (job queue) and the storage answer; 503 with the "
    "failed checks otherwise.",
    responses={503: {"description": "A dependency does not answer.", "model": Readiness}},
)
async def ready(gateway: GatewayDep) -> JSONResponse:
    checks = await gateway.readiness()
    ok = all(check.ok for check in checks.values())
    body = Readiness(status="ready" if ok else "unavailable", checks=checks)
    headers = {} if ok else {"Retry-After": "5"}
    return JSONResponse(body.model_dump(), status_code=200 if ok else 503, headers=headers)
