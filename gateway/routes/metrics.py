"""Prometheus scrape endpoint (/metrics, outside /api: nginx does not expose it)."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.concurrency import run_in_threadpool

from gateway.deps import GatewayDep

router = APIRouter(tags=["metrics"])


@router.get(
    "/metrics",
    summary="Prometheus metrics",
    responses={200: {"description": "Prometheus text format.", "content": {"text/plain": {}}}},
    response_class=Response,
)
async def metrics(gateway: GatewayDep) -> Response:
    body = await run_in_threadpool(generate_latest, gateway.metrics.registry)  # reads the queue depth
    return Response(body, media_type=CONTENT_TYPE_LATEST)
