"""Gateway settings (environment prefix ``FACEMINT_GATEWAY_``)."""

from __future__ import annotations

from pydantic import BaseModel, Field
from pydantic_settings import SettingsConfigDict

from facemint_core.settings import DatabaseSettings, HttpSettings, ServiceSettings
from facemint_core.vocab import MAX_MEDIA_BYTES
from facemint_gateway.auth import AccountsSettings


class ObjectStoreSettings(BaseModel):
    """The S3-compatible store behind signed uploads."""

    endpoint: str = ""
    access_key: str = ""
    secret_key: str = ""
    bucket: str = "facemint-uploads"
    region: str = "us-east-1"
    upload_url_ttl_seconds: int = Field(default=900, ge=60, le=7 * 24 * 3600)
    media_url_ttl_seconds: int = Field(default=24 * 3600, ge=60, le=7 * 24 * 3600)
    # The largest upload of each kind (the API's media table); the store refuses bigger ones.
    image_max_bytes: int = Field(default=MAX_MEDIA_BYTES["image"], ge=1)
    video_max_bytes: int = Field(default=MAX_MEDIA_BYTES["video"], ge=1)
    gif_max_bytes: int = Field(default=MAX_MEDIA_BYTES["gif"], ge=1)
    sweep_interval_seconds: float = Field(default=600.0, gt=0)

    model_config = {"frozen": True}

    def max_bytes(self, kind: str) -> int:
        """The size limit of an upload of ``kind`` (image, video or gif)."""
        limit: int = getattr(self, f"{kind}_max_bytes")
        return limit


class GatewaySettings(ServiceSettings):
    """Everything the gateway reads from its environment."""

    model_config = SettingsConfigDict(env_prefix="FACEMINT_GATEWAY_", env_nested_delimiter="__", extra="ignore")

    http: HttpSettings = HttpSettings(port=8080)
    database: DatabaseSettings = DatabaseSettings()
    apply_migrations: bool = True
    """Apply this service's pending migrations to its schema at start (off where ``facemint migrate`` runs them)."""
    orchestrator_target: str = "127.0.0.1:50061"
    library_target: str = "127.0.0.1:50064"
    webhook_target: str = "127.0.0.1:50065"
    rpc_timeout_seconds: float = Field(default=30.0, gt=0)
    max_body_bytes: int = Field(default=1024 * 1024, ge=1024)
    metadata_max_bytes: int = Field(default=2048, ge=0)
    admin_token: str = ""
    accounts: AccountsSettings = AccountsSettings()
    object_store: ObjectStoreSettings = ObjectStoreSettings()
    public_url: str = ""
    allow_http_callbacks: bool = False
    terminal_task_cache_entries: int = Field(default=10_000, ge=0)
    max_task_wait_seconds: float = Field(default=30.0, ge=0, le=55)
    """Longest long poll of ``GET /v1/task/{id}?wait=`` (below the orchestrator's own 60 s cap)."""
    cors_allow_origins: list[str] = []
    """Browser origins allowed to call the API (``["https://app.example.com"]``, ``["*"]`` for any); none by default.
    Preflight requests are answered without an API key."""
    gzip_min_bytes: int = Field(default=1024, ge=0)
    """Responses at least this large are gzip-compressed for clients that send ``Accept-Encoding: gzip``."""
