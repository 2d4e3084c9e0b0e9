"""Prometheus metrics of the media-decoder (``facemint_media_decoder_*``)."""

from __future__ import annotations

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge, Histogram

from facemint_core.metrics import LATENCY_BUCKETS

_PREFIX = "facemint_media_decoder"
_FETCH_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1200)


class DecoderMetrics:
    """Fetch, decode and inference-batch metrics; labels have few values (kinds, stages, reasons)."""

    def __init__(self, registry: CollectorRegistry = REGISTRY) -> None:
        """Register the metrics (tests pass their own registry)."""
        self.registry = registry
        self.fetched_bytes = Counter(
            f"{_PREFIX}_fetched_bytes_total", "Media bytes downloaded", ["kind"], registry=registry
        )
        self.fetch_seconds = Histogram(
            f"{_PREFIX}_fetch_seconds", "Time to download one media file", buckets=_FETCH_BUCKETS, registry=registry
        )
        self.fetch_errors = Counter(
            f"{_PREFIX}_fetch_errors_total",
            "Media downloads that failed, by reason (blocked, invalid_url, too_large, too_many_redirects, timeout, "
            "http_status, network)",
            ["reason"],
            registry=registry,
        )
        self.decode_seconds = Histogram(
            f"{_PREFIX}_decode_seconds",
            "Worker time spent per media file, by stage (probe, frames)",
            ["kind", "stage"],
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self.frames_decoded = Counter(
            f"{_PREFIX}_frames_decoded_total",
            "Sampled frames decoded and sent to inference",
            ["kind"],
            registry=registry,
        )
        self.inference_batch_seconds = Histogram(
            f"{_PREFIX}_inference_batch_seconds",
            "Latency of one AnalyzeFrames call",
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self.invalid_media = Counter(
            f"{_PREFIX}_invalid_media_total",
            "Media refused after fetching, by kind (unsupported, mismatched, oversized or corrupt)",
            ["kind"],
            registry=registry,
        )
        self.active_jobs = Gauge(f"{_PREFIX}_active_jobs", "Media jobs being fetched or decoded", registry=registry)
