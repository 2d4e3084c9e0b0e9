"""Typed settings shared by every service.

Each service subclasses :class:`ServiceSettings` with ``env_prefix="FACEMINT_<SVC>_"``; nested groups are set
with a double underscore, e.g. ``FACEMINT_GATEWAY_HTTP__PORT=8080``. :func:`load_settings` turns a validation
failure into one readable message and a non-zero exit, so that a bad value stops start-up immediately.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TypeVar

from pydantic import BaseModel, Field, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

from facemint_core.vocab import MAX_MESSAGE_BYTES


class HttpSettings(BaseModel):
    """The HTTP listener (health, readiness and metrics; the public API on the gateway)."""

    host: str = "127.0.0.1"
    port: int = Field(default=0, ge=0, le=65535)


class GrpcSettings(BaseModel):
    """The gRPC listener."""

    host: str = "127.0.0.1"
    port: int = Field(default=0, ge=0, le=65535)
    max_message_bytes: int = Field(default=MAX_MESSAGE_BYTES, ge=1024)
    max_connection_age_seconds: int = Field(default=300, ge=10)


class NatsSettings(BaseModel):
    """The NATS JetStream connection."""

    url: str = "nats://127.0.0.1:4222"
    """One server URL, or several separated by commas (the client fails over between a cluster's nodes)."""
    connect_timeout_seconds: float = Field(default=5.0, gt=0)
    stream_replicas: int = Field(default=1, ge=1, le=5)
    """Replicas of each JetStream stream the service creates (3 on a 3-node cluster). A restart never lowers the
    replicas of an existing stream: scale one down with ``nats stream edit``."""
    tls_ca_file: Path | None = None
    """CA bundle that signed the server's certificate: set, the connection uses TLS and verifies the server."""
    tls_cert_file: Path | None = None
    """Client certificate (PEM) for mutual TLS, with ``tls_key_file``."""
    tls_key_file: Path | None = None


class DatabaseSettings(BaseModel):
    """The PostgreSQL connection pool."""

    dsn: str = "postgresql://facemint@127.0.0.1:5432/facemint"
    min_pool_size: int = Field(default=1, ge=0)
    max_pool_size: int = Field(default=10, ge=1)


class LogSettings(BaseModel):
    """Logging."""

    level: str = Field(default="INFO", pattern="^(DEBUG|INFO|WARNING|ERROR)$")


class TracingSettings(BaseModel):
    """OpenTelemetry tracing, exported over OTLP/gRPC; off (and free) when no endpoint is set."""

    otlp_endpoint: str = ""
    """The collector's OTLP/gRPC endpoint, ``host:port`` (e.g. ``otel-collector.observability:4317``)."""
    insecure: bool = False
    """Plain gRPC to the collector; by default the exporter uses TLS, verified against ``tls_ca_file`` or the
    system's CAs."""
    tls_ca_file: Path | None = None
    """CA bundle that signed the collector's certificate (default: the system's CAs)."""
    tls_cert_file: Path | None = None
    """Client certificate (PEM) for mutual TLS, with ``tls_key_file``."""
    tls_key_file: Path | None = None
    headers: dict[str, str] = {}
    """Metadata sent with every export, e.g. ``{"x-api-key": "..."}`` for a hosted collector (JSON in the
    environment: ``FACEMINT_<SVC>_TRACING__HEADERS='{"x-api-key": "..."}'``)."""
    sample_ratio: float = Field(default=1.0, ge=0, le=1)
    """Share of traces started here that are recorded; a span whose caller sampled it is always recorded
    (parent-based), so a trace is never cut in the middle."""


class ServiceSettings(BaseSettings):
    """Settings common to every service."""

    model_config = SettingsConfigDict(env_nested_delimiter="__", extra="ignore")

    http: HttpSettings = HttpSettings()
    grpc: GrpcSettings = GrpcSettings()
    log: LogSettings = LogSettings()
    tracing: TracingSettings = TracingSettings()
    shutdown_grace_seconds: float = Field(default=10.0, ge=0)


S = TypeVar("S", bound=BaseSettings)


def format_validation_error(exc: ValidationError, prefix: str) -> str:
    """Render a pydantic validation error as one line per bad setting, named by its environment variable."""
    lines = []
    for err in exc.errors():
        env = prefix + "__".join(str(part) for part in err["loc"]).upper()
        lines.append(f"  {env}: {err['msg']} (got {err.get('input')!r})")
    return "invalid configuration:\n" + "\n".join(lines)


def load_settings(cls: type[S]) -> S:
    """Build settings from the environment; on a bad value print a clear message and exit with status 2."""
    try:
        return cls()
    except ValidationError as exc:
        prefix = str(cls.model_config.get("env_prefix", ""))
        print(format_validation_error(exc, prefix), file=sys.stderr)
        raise SystemExit(2) from None
