"""Library service settings (environment prefix ``FACEMINT_LIBRARY_``).

Nested groups use a double underscore, e.g. ``FACEMINT_LIBRARY_VECTOR_BACKEND=qdrant`` with
``FACEMINT_LIBRARY_QDRANT__URL=http://qdrant:6333``, or ``FACEMINT_LIBRARY_ENROL__MIN_QUALITY=0.4``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field
from pydantic_settings import SettingsConfigDict

from facemint_core.settings import DatabaseSettings, GrpcSettings, ServiceSettings


class QdrantSettings(BaseModel):
    """A Qdrant server (``vector_backend=qdrant``).

    ``location`` overrides ``url`` and exists for tests: ``":memory:"`` runs qdrant-client's local mode, which
    goes through the same client code path as a server.
    """

    url: str = "http://127.0.0.1:6333"
    api_key: str = ""
    location: str = ""
    timeout_seconds: float = Field(default=10.0, gt=0)
    shard_number: int = Field(default=1, ge=1)
    """Shards of each collection the service creates (spread over a Qdrant cluster's nodes)."""
    replication_factor: int = Field(default=1, ge=1)
    """Copies of each shard (3 on a 3-node cluster: a collection survives the loss of a node)."""
    write_consistency_factor: int = Field(default=1, ge=1)
    """Replicas that must confirm a write before it succeeds."""


class HnswSettings(BaseModel):
    """HNSW index parameters of the vector stores.

    ``m`` is the degree of each library's own graphs: one per segment of its shard (embedded engine, segments of at
    most ``segment_kb``), or Qdrant's ``payload_m`` (server: one collection per embedding model, no global graph).
    """

    m: int = Field(default=32, ge=4, le=128)
    """32 (with ``ef_construct`` 200) rather than 16/100: at 1M x 128 every above-threshold match is found at
    ef=256-512, where m=16 missed 6% of them; the graph takes ~3.5x longer to build (``docs/library.md``)."""
    ef_construct: int = Field(default=200, ge=8, le=2048)
    ef_search: int = Field(default=512, ge=8, le=4096)
    """Candidates a graph search keeps in each segment (``segment_kb``). 512: at 1M x 128, recall@10 0.994 against
    exact search in 7-8 ms p50 on the 2-core development VM (two runs, ``docs/library.md``); 640-768 buy recall
    0.997-0.999 for 1-3 ms more. Libraries under ``full_scan_threshold_kb`` are scanned exactly and ignore it."""
    # Segments smaller than this (in KB of vectors) are searched exactly, without an HNSW graph.
    full_scan_threshold_kb: int = Field(default=10_000, ge=0)
    quantization: Literal["int8", "none"] = "int8"
    """``int8``: Qdrant's scalar quantization (one byte per dimension, kept in RAM) for graph building and the
    search itself; the best ``limit * oversampling`` candidates are then rescored with the original float vectors,
    so returned scores are exact. Measured at 100k x 128 (``make bench-library``): index build 43 -> 18 s and
    search about 2x faster at the same recall. Applies to collections created after the change."""
    oversampling: float = Field(default=2.0, ge=1.0, le=16.0)
    search_threads: int = Field(default=0, ge=0, le=64)
    """Threads one search may use across the segments of the embedded engine (0: the engine's default)."""
    segment_kb: int = Field(default=128_000, ge=64, le=100_000_000)
    """Float vectors per indexed segment at most, in KB (Qdrant's ``max_segment_size``), embedded engine: a library
    is indexed in segments of this size, which one search walks in parallel, so ``ef_search`` buys about the same
    recall whatever the library's size. 128,000 KB: 256k vectors at 128-d, 64k at 512-d. Applies to libraries
    created after the change."""


class EnrolSettings(BaseModel):
    """What a reference image must satisfy to be enrolled."""

    # Faces whose shorter box side is below this many pixels are too small to serve as a reference; smaller faces
    # in the background of a reference photo are ignored when counting its faces.
    min_face_size: int = Field(default=48, ge=1)
    # Minimum value of the ``quality`` attribute (0-1) returned by the analysis.
    min_quality: float = Field(default=0.3, ge=0, le=1)
    max_faces_per_person: int = Field(default=64, ge=1, le=10_000)


class CalibrationSettings(BaseModel):
    """Where score calibrations come from: the packaged files, overridden by files in ``directory`` if set."""

    directory: str = ""


class LibrarySettings(ServiceSettings):
    """Everything the library service reads from its environment."""

    model_config = SettingsConfigDict(env_prefix="FACEMINT_LIBRARY_", env_nested_delimiter="__", extra="ignore")

    grpc: GrpcSettings = GrpcSettings(port=50064)
    database: DatabaseSettings = DatabaseSettings()
    apply_migrations: bool = True
    """Apply this service's pending migrations to its schema at start (off where ``facemint migrate`` runs them)."""
    media_decoder_target: str = "127.0.0.1:50062"
    media_decoder_timeout_seconds: float = Field(default=60.0, gt=0)
    vector_backend: Literal["edge", "qdrant"] = "edge"
    data_dir: Path = Path("var/library")
    qdrant: QdrantSettings = QdrantSettings()
    hnsw: HnswSettings = HnswSettings()
    enrol: EnrolSettings = EnrolSettings()
    calibration: CalibrationSettings = CalibrationSettings()
    # Smallest face side (px) that the analysis reports for enrolment and compare where the image has such a face;
    # an image without one still yields its largest smaller face (AnalyzeOptions.largest_face_fallback), which
    # compare scores and enrolment refuses as too small (enrol.min_face_size) rather than as no face at all.
    detect_min_face_size: int = Field(default=20, ge=1)
    # Nearest points fetched per query face before they are grouped by person (templates and centroids).
    search_candidates: int = Field(default=64, ge=10, le=1000)
    # How often the embedded (edge) store checks whether new segments need indexing.
    optimize_interval_seconds: float = Field(default=5.0, gt=0)
