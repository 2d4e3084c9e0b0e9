"""Settings of the media-decoder, from ``FACEMINT_MEDIA_DECODER_*`` environment variables.

Groups use a double underscore, e.g. ``FACEMINT_MEDIA_DECODER_INFERENCE__TARGET=127.0.0.1:50051`` (required),
``FACEMINT_MEDIA_DECODER_FETCH__ALLOW_CIDRS='["127.0.0.1/32"]'``,
``FACEMINT_MEDIA_DECODER_FETCH__ALLOW_ENDPOINTS='["127.0.0.1:8333"]'``, ``FACEMINT_MEDIA_DECODER_DECODE__WORKERS=4``.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field, model_validator
from pydantic_settings import SettingsConfigDict

from facemint_core.netsafe import EndpointList, FetchPolicy, NetworkList, parse_endpoints, parse_networks
from facemint_core.settings import ServiceSettings
from facemint_core.vocab import MAX_MEDIA_BYTES, MAX_MESSAGE_BYTES, MAX_PIXELS, MAX_SIDE, MIB
from facemint_media_decoder.decode import DecodeLimits
from facemint_media_decoder.sniff import Kind


class FetchSettings(BaseModel):
    """Outbound HTTP policy for media URLs (SSRF protection and timeouts)."""

    allow_cidrs: NetworkList = Field(
        default_factory=list,
        description="Non-public networks that may be fetched anyway, e.g. 10.0.0.0/8 for an in-cluster store",
    )
    allow_endpoints: EndpointList = Field(
        default_factory=list,
        description="Non-public address:port endpoints that may be fetched anyway, e.g. 127.0.0.1:8333 for the S3 "
        "port of a local object store (its other ports on that address stay refused)",
    )
    https_only: bool = False
    connect_timeout_seconds: float = Field(default=10.0, gt=0)
    read_timeout_seconds: float = Field(default=30.0, gt=0)
    total_timeout_seconds: float = Field(default=900.0, gt=0)
    max_redirects: int = Field(default=5, ge=0, le=20)
    deadline_reserve_seconds: float = Field(
        default=5.0,
        ge=0,
        description="Of a caller's gRPC deadline, the seconds kept for decoding and analysis: the fetch must end that "
        "much earlier, and a host that is slower fails the media as invalid_media instead of the call's deadline",
    )
    retry_seconds: float = Field(
        default=8.0,
        ge=0,
        description="How long a refused or broken connection, or HTTP 502/503/504, is retried before the media fails "
        "(an object store or origin restarting)",
    )

    def policy(self) -> FetchPolicy:
        """The netsafe policy these settings describe."""
        return FetchPolicy(
            allow=parse_networks(self.allow_cidrs),
            allow_endpoints=parse_endpoints(self.allow_endpoints),
            https_only=self.https_only,
            connect_timeout=self.connect_timeout_seconds,
            read_timeout=self.read_timeout_seconds,
            total_timeout=self.total_timeout_seconds,
            max_redirects=self.max_redirects,
            user_agent="facemint-media-decoder/0.1",
        )


class LimitSettings(BaseModel):
    """Size and resolution caps per kind (the API's media table)."""

    video_max_bytes: int = Field(default=MAX_MEDIA_BYTES["video"], ge=1)
    image_max_bytes: int = Field(default=MAX_MEDIA_BYTES["image"], ge=1)
    animated_max_bytes: int = Field(default=MAX_MEDIA_BYTES["gif"], ge=1)
    max_side: int = Field(default=MAX_SIDE, ge=1)
    max_pixels: int = Field(default=MAX_PIXELS, ge=1)
    animated_max_side: int = Field(default=4096, ge=1)
    animated_max_frames: int = Field(default=10_000, ge=1)
    animated_max_total_pixels: int = Field(default=4_000_000_000, ge=1)
    animated_max_pixels_per_second: int = Field(
        default=64_000_000, ge=1, description="work budget: frames x canvas pixels per second of animation billed"
    )

    def max_bytes(self, kind: Kind) -> int:
        """The byte cap of a kind."""
        return {Kind.VIDEO: self.video_max_bytes, Kind.IMAGE: self.image_max_bytes}.get(kind, self.animated_max_bytes)


class DecodeSettings(BaseModel):
    """The decode pool and the spool directory."""

    workers: int = Field(default=2, ge=1, description="decode threads: decode steps running at once")
    max_concurrent_jobs: int = Field(default=4, ge=1, description="media requests fetched/decoded at once")
    read_ahead_frames: int = Field(default=4, ge=1, description="decoded frames buffered ahead of inference")
    video_threads: int = Field(default=0, ge=0, description="FFmpeg threads per video; 0 = automatic")
    spool_dir: Path = Field(default_factory=lambda: Path(tempfile.gettempdir()) / "facemint-media-decoder")


class InferenceSettings(BaseModel):
    """The inference service this service sends frames to."""

    target: str = Field(min_length=1, description="host:port of the inference gRPC service")
    frames_per_batch: int = Field(default=4, ge=1, le=64)
    pipeline_depth: int = Field(default=2, ge=1, le=16, description="AnalyzeFrames calls in flight per request")
    timeout_seconds: float = Field(default=60.0, gt=0)
    max_message_bytes: int = Field(default=MAX_MESSAGE_BYTES, ge=1 * MIB)
    jpeg_quality: int = Field(default=95, ge=50, le=100, description="for frames too large for one message")


class MediaDecoderSettings(ServiceSettings):
    """Everything the media-decoder process is configured with."""

    model_config = SettingsConfigDict(env_prefix="FACEMINT_MEDIA_DECODER_", env_nested_delimiter="__", extra="ignore")

    inference: InferenceSettings
    fetch: FetchSettings = FetchSettings()
    limits: LimitSettings = LimitSettings()
    decode: DecodeSettings = DecodeSettings()

    @model_validator(mode="before")
    @classmethod
    def _name_the_missing_target(cls, data: Any) -> Any:
        """Report a missing inference target as ``..._INFERENCE__TARGET`` rather than the whole group."""
        if isinstance(data, dict):
            data.setdefault("inference", {})
        return data

    def decode_limits(self) -> DecodeLimits:
        """The decoder's caps."""
        return DecodeLimits(
            max_side=self.limits.max_side,
            max_pixels=self.limits.max_pixels,
            animated_max_side=self.limits.animated_max_side,
            animated_max_frames=self.limits.animated_max_frames,
            animated_max_total_pixels=self.limits.animated_max_total_pixels,
            animated_max_pixels_per_second=self.limits.animated_max_pixels_per_second,
            video_threads=self.decode.video_threads,
        )
