"""Prometheus metrics helpers; names follow ``facemint_<svc>_<noun>_<unit>``."""

from __future__ import annotations

from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, Counter, Histogram, generate_latest

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)


def metric_prefix(service: str) -> str:
    """Return ``facemint_<svc>`` with dashes turned into underscores."""
    return "facemint_" + service.replace("-", "_")


class RpcMetrics:
    """Request count and latency of a gRPC server, labelled by method and status code (one per service name)."""

    _instances: dict[str, RpcMetrics] = {}

    def __new__(cls, service: str) -> RpcMetrics:
        """Reuse the metrics of a service already set up in this process (collectors register once)."""
        if service not in cls._instances:
            cls._instances[service] = super().__new__(cls)
        return cls._instances[service]

    def __init__(self, service: str) -> None:
        if hasattr(self, "requests"):
            return
        prefix = metric_prefix(service)
        self.requests = Counter(f"{prefix}_grpc_requests_total", "gRPC requests handled", ["method", "code"])
        self.latency = Histogram(
            f"{prefix}_grpc_request_seconds", "gRPC request latency", ["method"], buckets=LATENCY_BUCKETS
        )


def render_latest() -> tuple[bytes, str]:
    """Return the exposition of the default registry and its content type."""
    return generate_latest(REGISTRY), CONTENT_TYPE_LATEST
