"""Prometheus metrics of the library service (``facemint_library_*``); RPC counts and latencies come from core."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

from facemint_core.metrics import LATENCY_BUCKETS

SEARCH_SECONDS = Histogram(
    "facemint_library_search_seconds",
    "Time to identify one Search request (all its faces), vector search and joint assignment included",
    buckets=LATENCY_BUCKETS,
)
SEARCH_FACES = Counter("facemint_library_search_faces_total", "Query faces searched", ["outcome"])
ENROL_TOTAL = Counter("facemint_library_enrol_total", "Enrolment attempts by outcome", ["outcome"])
VECTORS = Gauge("facemint_library_vectors", "Vectors in the vector store (reference templates and person centroids)")
