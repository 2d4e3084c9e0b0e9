"""Webhook dispatcher settings (environment prefix ``FACEMINT_WEBHOOK_DISPATCHER_``)."""

from __future__ import annotations

from pydantic import BaseModel, Field
from pydantic_settings import SettingsConfigDict

from facemint_core.netsafe import EndpointList, NetworkList
from facemint_core.settings import DatabaseSettings, GrpcSettings, NatsSettings, ServiceSettings
from facemint_core.vocab import MAX_WEBHOOK_SECRET_GRACE_SECONDS


class ScheduleSettings(BaseModel):
    """The retry schedule: attempt ``n + 1`` follows a failed attempt ``n`` after ``base * factor ** (n - 1)`` seconds.

    ``max_attempts`` counts the first attempt too: the API's "retried up to 8 times" is 9 attempts. Each delay is
    jittered by up to ``spread`` (a fraction, both ways) and multiplied by ``time_scale``; with the defaults the
    ninth and last attempt (the eighth retry) comes about 16.9 h after the first (18.6 h with the largest jitter),
    so that every attempt falls within the 24 h the API promises.
    """

    max_attempts: int = Field(default=9, ge=1, le=20)
    base_seconds: float = Field(default=60.0, gt=0)
    factor: float = Field(default=2.5, ge=1)
    spread: float = Field(default=0.1, ge=0, lt=1)
    time_scale: float = Field(default=1.0, gt=0)


class EventSettings(BaseModel):
    """How terminal task events are consumed from JetStream."""

    durable: str = "webhook-dispatcher"
    concurrency: int = Field(default=8, ge=1, le=256)
    ack_wait_seconds: float = Field(default=30.0, gt=0)
    # A database outage must not discard events: retry for days (the stream keeps events for seven).
    max_deliver: int = Field(default=10_000, ge=2)
    backoff_base_seconds: float = Field(default=1.0, ge=0)


class WebhookSettings(ServiceSettings):
    """Everything the webhook dispatcher reads from its environment."""

    model_config = SettingsConfigDict(
        env_prefix="FACEMINT_WEBHOOK_DISPATCHER_", env_nested_delimiter="__", extra="ignore"
    )

    grpc: GrpcSettings = GrpcSettings(port=50065)
    database: DatabaseSettings = DatabaseSettings()
    nats: NatsSettings = NatsSettings()
    apply_migrations: bool = True
    events: EventSettings = EventSettings()
    schedule: ScheduleSettings = ScheduleSettings()
    # Outbound HTTP.
    allow_http: bool = False
    allow_cidrs: NetworkList = Field(default_factory=list)
    allow_endpoints: EndpointList = Field(default_factory=list)
    timeout_seconds: float = Field(default=10.0, gt=0)
    max_response_bytes: int = Field(default=4096, ge=0)
    # The scheduler.
    concurrency: int = Field(default=32, ge=1, le=1024)
    poll_interval_seconds: float = Field(default=1.0, gt=0)
    lease_margin_seconds: float = Field(default=5.0, ge=0)
    # Secrets.
    rotation_grace_seconds: int = Field(default=24 * 3600, ge=0, le=MAX_WEBHOOK_SECRET_GRACE_SECONDS)

    @property
    def lease_seconds(self) -> float:
        """How long a claimed attempt is owned before another scheduler may take the delivery over."""
        return self.timeout_seconds + self.lease_margin_seconds
