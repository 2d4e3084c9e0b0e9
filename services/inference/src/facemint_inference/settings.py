"""Typed settings of the inference service (environment prefix ``FACEMINT_INFERENCE_``).

Nested groups use a double underscore, e.g. ``FACEMINT_INFERENCE_ORT__INTRA_OP_THREADS=2`` or
``FACEMINT_INFERENCE_TRITON__URL=triton:8001``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field
from pydantic_settings import SettingsConfigDict

from facemint_core.settings import ServiceSettings
from facemint_core.vocab import MAX_PIXELS

MODEL_DIR_NAME = "triton-models"


def default_model_dir() -> Path:
    """Find the repository's ``triton-models`` folder.

    Looks in the current directory and its parents first (a service started from anywhere inside a checkout),
    then beside the source tree of this package (an editable install started from elsewhere). Falls back to
    ``./triton-models``; a container sets ``FACEMINT_INFERENCE_MODEL_DIR`` explicitly.

    Returns:
        The first existing candidate, else ``triton-models`` under the current directory.
    """
    cwd = Path.cwd().resolve()
    for base in (cwd, *cwd.parents, *Path(__file__).resolve().parents):
        candidate = base / MODEL_DIR_NAME
        if candidate.is_dir():
            return candidate
    return cwd / MODEL_DIR_NAME


class OrtSettings(BaseModel):
    """ONNX Runtime session threads (per session; parallelism across calls comes from the executor)."""

    intra_op_threads: int = Field(default=1, ge=1, le=64)
    inter_op_threads: int = Field(default=1, ge=1, le=64)
    detector_intra_op_threads: int = Field(default=2, ge=1, le=64)
    """Threads of the detector's session. Detection is the one step of a request that nothing else can overlap,
    so it may use both cores; its threads do not spin while idle (spinning threads would steal the cores the
    other workers use). 1080p on two cores: ~13 -> ~10 ms."""


class TritonSettings(BaseModel):
    """The Triton Inference Server that serves ``model_dir`` when ``runner`` is ``triton``."""

    url: str = "127.0.0.1:8001"
    """A gRPC target: ``host:port``, or ``dns:///name:port`` of a headless Service to reach every Triton pod."""
    timeout_seconds: float = Field(default=30.0, gt=0)
    load_balancing: Literal["pick_first", "round_robin"] = "pick_first"
    """``round_robin`` spreads calls over every address ``url`` resolves to (one connection each), instead of pinning
    every call to the first one; with a headless Service each call goes to the next Triton pod."""


class InferenceSettings(ServiceSettings):
    """Settings of the inference service."""

    model_config = SettingsConfigDict(env_prefix="FACEMINT_INFERENCE_", env_nested_delimiter="__", extra="ignore")

    pack: Literal["open", "insightface"] = "open"
    runner: Literal["onnxruntime", "triton"] = "onnxruntime"
    model_dir: Path = Field(default_factory=default_model_dir)
    ort: OrtSettings = OrtSettings()
    triton: TritonSettings = TritonSettings()
    executor_workers: int = Field(default=2, ge=1, le=64)
    detection_size: int = Field(default=640, ge=128, le=2048, multiple_of=32)
    max_frames_per_request: int = Field(default=64, ge=1)
    max_frame_pixels: int = Field(default=MAX_PIXELS, ge=1)
    model_retry_seconds: float = Field(default=30.0, gt=0)
