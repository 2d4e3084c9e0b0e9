"""Orchestrator settings (environment prefix ``FACEMINT_TASK_ORCHESTRATOR_``)."""

from __future__ import annotations

from pydantic import BaseModel, Field
from pydantic_settings import SettingsConfigDict

from facemint_core.settings import DatabaseSettings, GrpcSettings, NatsSettings, ServiceSettings


class WorkerSettings(BaseModel):
    """How jobs are consumed and retried."""

    concurrency: int = Field(default=2, ge=1, le=64, description="tasks of any type run at once")
    image_concurrency: int = Field(default=1, ge=0, le=64, description="more slots that run images only")
    waiting_jobs: int = Field(
        default=8, ge=0, le=256, description="jobs fetched beyond the slots, among which fair scheduling chooses"
    )
    ack_wait_seconds: float = Field(default=15.0, gt=0)
    max_attempts: int = Field(default=4, ge=1, le=20)
    backoff_base_seconds: float = Field(default=1.0, ge=0)
    task_timeout_seconds: float = Field(default=1800.0, gt=0)
    progress_interval_seconds: float = Field(default=0.5, gt=0)
    sweep_interval_seconds: float = Field(default=5.0, gt=0)
    requeue_after_seconds: float = Field(default=30.0, gt=0)


class EstimateSettings(BaseModel):
    """Inputs of ``estimated_seconds`` before the first measurements."""

    seconds_per_frame: float = Field(default=0.25, gt=0)
    overhead_seconds: float = Field(default=1.0, ge=0)
    assumed_video_seconds: float = Field(default=30.0, gt=0)
    max_video_seconds: float = Field(
        default=86_400.0,
        gt=0,
        description="longest scan window estimated before the file is probed: an 'end_time' further on only bounds "
        "the scan, the file ends first",
    )
    assumed_animated_frames: int = Field(default=20, ge=1)


class TrackingSettings(BaseModel):
    """Face-track association across sampled frames."""

    min_iou: float = Field(default=0.3, ge=0, le=1)
    min_similarity: float = Field(default=0.45, ge=-1, le=1)
    max_gap_samples: int = Field(default=2, ge=1)


class OrchestratorSettings(ServiceSettings):
    """Everything the orchestrator reads from its environment."""

    model_config = SettingsConfigDict(
        env_prefix="FACEMINT_TASK_ORCHESTRATOR_", env_nested_delimiter="__", extra="ignore"
    )

    grpc: GrpcSettings = GrpcSettings(port=50061)
    database: DatabaseSettings = DatabaseSettings()
    nats: NatsSettings = NatsSettings()
    media_decoder_target: str = "127.0.0.1:50062"
    library_target: str = "127.0.0.1:50064"
    worker: WorkerSettings = WorkerSettings()
    estimate: EstimateSettings = EstimateSettings()
    tracking: TrackingSettings = TrackingSettings()
    apply_migrations: bool = True
    max_wait_seconds: float = Field(default=60.0, ge=0)
    """Longest long poll of ``GetTask`` (the gateway's ``wait`` is capped lower)."""
    creation_id_ttl_seconds: float = Field(default=24 * 3600, gt=0)
    """How long a ``CreateTask`` creation id returns the task it stored; keep it equal to the gateway's
    ``accounts.idempotency_ttl_seconds``, the time an ``Idempotency-Key`` (from which the id may derive) is kept."""
