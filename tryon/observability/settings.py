"""Logging and tracing settings, read once per process from the environment.

The OpenTelemetry variables keep their standard names (``OTEL_EXPORTER_OTLP_ENDPOINT``,
``OTEL_SERVICE_NAME``, ...), so the usual collector set-up works unchanged; ours are ``TRYON_LOG_*``.
"""

from __future__ import annotations

from typing import Literal

from pydantic import AliasChoices, Field
from pydantic_settings import BaseSettings, SettingsConfigDict

LogLevel = Literal["DEBUG", "INFO", "WARNING", "ERROR"]


class ObservabilitySettings(BaseSettings):
    model_config = SettingsConfigDict(extra="ignore", populate_by_name=True)

    log_level: LogLevel = Field(default="INFO", validation_alias=AliasChoices("TRYON_LOG_LEVEL", "log_level"))
    log_json: bool = Field(default=False, validation_alias=AliasChoices("TRYON_LOG_JSON", "log_json"))
    #: Base URL of an OTLP/HTTP collector (``http://collector:4318``); empty: tracing is a no-op.
    otlp_endpoint: str = Field(
        default="", validation_alias=AliasChoices("OTEL_EXPORTER_OTLP_ENDPOINT", "otlp_endpoint")
    )
    #: Full URL for traces only (wins over ``otlp_endpoint`` + ``/v1/traces``), as the OTel spec says.
    otlp_traces_endpoint: str = Field(
        default="",
        validation_alias=AliasChoices("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "otlp_traces_endpoint"),
    )
    #: Overrides the name each process passes to ``setup_tracing`` (standard OTel variable).
    service_name: str = Field(default="", validation_alias=AliasChoices("OTEL_SERVICE_NAME", "service_name"))
    #: How often finished spans are exported (ms); short for tests, the SDK's 5 s default otherwise.
    export_delay_ms: int = Field(
        default=5000, ge=1, validation_alias=AliasChoices("OTEL_BSP_SCHEDULE_DELAY", "export_delay_ms")
    )

    @property
    def traces_url(self) -> str:
        if self.otlp_traces_endpoint:
            return self.otlp_traces_endpoint
        if self.otlp_endpoint:
            return self.otlp_endpoint.rstrip("/") + "/v1/traces"
        return ""
