"""Dependencies the routers share: the gateway context, optional API keys, per-client rate limits."""

from __future__ import annotations

import hashlib
import hmac
import math
import time
from typing import Annotated

from fastapi import Depends, Request, Security
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer

from gateway.context import Gateway
from gateway.problems import Problem

RATE_LIMIT_PREFIX = "tryon:ratelimit:"

_api_key_header = APIKeyHeader(
    name="X-API-Key", auto_error=False, description="Needed only when the server is configured with API keys."
)
_bearer = HTTPBearer(
    auto_error=False, description="The API key as a bearer token (alternative to X-API-Key)."
)


def get_gateway(request: Request) -> Gateway:
    gateway: Gateway = request.app.state.gateway
    return gateway


GatewayDep = Annotated[Gateway, Depends(get_gateway)]


def _client_key(request: Request) -> str:
    key = getattr(request.state, "api_key_id", None)
    if key:
        return f"key:{key}"
    return f"ip:{request.client.host if request.client else 'unknown'}"


async def require_api_key(
    request: Request,
    gateway: GatewayDep,
    header_key: Annotated[str | None, Security(_api_key_header)] = None,
    bearer: Annotated[HTTPAuthorizationCredentials | None, Security(_bearer)] = None,
) -> None:
    """When API keys are configured, the request must carry one of them (401 otherwise)."""
    keys = gateway.settings.api_keys
    if not keys:
        return
    given = header_key or (bearer.credentials if bearer else None)
    if not given:
        raise Problem(
            401, "this server needs an API key: send it in the X-API-Key header",
            kind="api-key-required", headers={"WWW-Authenticate": 'Bearer realm="tryon"'},
        )  # fmt: skip
    given_bytes = given.encode()
    if not any(hmac.compare_digest(given_bytes, key.get_secret_value().encode()) for key in keys):
        raise Problem(
            401, "the API key is not valid", kind="api-key-invalid", title="Invalid API key",
            headers={"WWW-Authenticate": 'Bearer realm="tryon", error="invalid_token"'},
        )  # fmt: skip
    # Rate limits count per key; the key itself is never stored, only a short digest of it.
    request.state.api_key_id = hashlib.sha256(given_bytes).hexdigest()[:16]


async def _limit(request: Request, gateway: Gateway, bucket: str, limit: int) -> None:
    """Fixed-window counter in Redis, shared by every gateway replica: 429 + Retry-After over ``limit``."""
    if limit <= 0:
        return
    window = gateway.settings.rate_limit_window_s
    now = time.time()
    index = int(now // window)
    key = f"{RATE_LIMIT_PREFIX}{bucket}:{_client_key(request)}:{index}"
    async with gateway.redis.pipeline(transaction=False) as pipe:
        pipe.incr(key)
        pipe.expire(key, window + 1)
        count, _ = await pipe.execute()
    if int(count) > limit:
        retry_after = max(1, math.ceil((index + 1) * window - now))
        if bucket == "submit":
            gateway.metrics.refused.labels("rate_limited").inc()
        what = "submissions" if bucket == "submit" else "requests"
        raise Problem(
            429, f"more than {limit} {what} in {window} s from this client; try again in {retry_after} s",
            kind="rate-limited", headers={"Retry-After": str(retry_after)},
        )  # fmt: skip


async def limit_requests(request: Request, gateway: GatewayDep) -> None:
    await _limit(request, gateway, "read", gateway.settings.rate_limit_requests)


async def limit_submissions(request: Request, gateway: GatewayDep) -> None:
    await _limit(request, gateway, "submit", gateway.settings.rate_limit_submissions)
