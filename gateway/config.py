"""The gateway's settings: :class:`~tryon.jobs.settings.JobSettings` plus the HTTP side (``TRYON_*`` env).

Read once at start-up (:func:`load_settings`); bad values stop the process with pydantic's message naming
the variable.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import NoDecode

from tryon.jobs.settings import JobSettings

REPO = Path(__file__).resolve().parents[1]


class GatewaySettings(JobSettings):
    # --- HTTP server --------------------------------------------------------------------------------
    host: str = "0.0.0.0"
    port: int = Field(default=8000, ge=0, le=65535)
    #: Uvicorn worker processes (each an event loop on uvloop).
    workers: int = Field(default=1, ge=1, le=64)
    #: Proxies whose X-Forwarded-For / -Proto are trusted (comma separated IPs or CIDRs, "*" for any): the
    #: client address behind nginx is what rate limits count.
    forwarded_allow_ips: str = "127.0.0.1"
    #: Log every request (Uvicorn's access log). Log level and format: TRYON_LOG_LEVEL, TRYON_LOG_JSON.
    access_log: bool = False
    #: Serve frontend/ at / (when no nginx is in front). nginx serves it in compose and Kubernetes.
    serve_frontend: bool = True
    frontend_dir: Path = REPO / "frontend"

    # --- Uploads ------------------------------------------------------------------------------------
    #: Per photo, checked while the upload streams in (413). nginx's body limit is 2x this + 1 MB. The
    #: pixel limit (tryon.imaging.MAX_PIXELS) and the minimum sizes (tryon.pipeline) are the pipeline's own.
    max_upload_mb: int = Field(default=15, ge=1, le=200)

    # --- Protection ---------------------------------------------------------------------------------
    #: Jobs waiting in the broker above which submissions get 503 + Retry-After (0: no limit).
    max_queue_depth: int = Field(default=200, ge=0)
    backpressure_retry_after_s: int = Field(default=30, ge=1, le=3600)
    #: Per client (API key, else IP) and window: submissions, and all other API requests (0: no limit).
    rate_limit_submissions: int = Field(default=30, ge=0)
    rate_limit_requests: int = Field(default=1200, ge=0)
    rate_limit_window_s: int = Field(default=60, ge=1, le=86_400)
    #: Accepted API keys (comma separated or a JSON list); empty: no key needed. Sent as X-API-Key or
    #: "Authorization: Bearer <key>".
    api_keys: Annotated[list[SecretStr], NoDecode] = Field(default_factory=list)
    #: Origins allowed by CORS (comma separated or a JSON list; empty: no CORS headers, same origin only).
    cors_origins: Annotated[list[str], NoDecode] = Field(default_factory=list)
    #: How long an Idempotency-Key is remembered (default: as long as a job lives).
    idempotency_ttl_s: int | None = Field(default=None, ge=60)
    #: Server-sent events: a comment this often keeps proxies from closing an idle stream.
    sse_keepalive_s: float = Field(default=15.0, gt=0, le=300)
    #: An event stream ends after this long even if the job has not (the page then polls or reconnects).
    sse_max_duration_s: float = Field(default=3600.0, gt=0)

    @field_validator("api_keys", "cors_origins", mode="before")
    @classmethod
    def _split_list(cls, value: object) -> object:
        if isinstance(value, str):
            text = value.strip()
            if text.startswith("["):
                import json

                return json.loads(text)
            return [item.strip() for item in text.split(",") if item.strip()]
        return value

    @property
    def max_upload_bytes(self) -> int:
        return self.max_upload_mb * 1024 * 1024

    @property
    def max_body_bytes(self) -> int:
        """Two photos plus the form fields: what nginx's client_max_body_size matches."""
        return 2 * self.max_upload_bytes + 1024 * 1024

    @property
    def idempotency_ttl(self) -> int:
        return self.idempotency_ttl_s or self.job_ttl_s


def load_settings(**overrides: Any) -> GatewaySettings:
    return GatewaySettings(**{key: value for key, value in overrides.items() if value is not None})
