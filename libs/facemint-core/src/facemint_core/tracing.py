"""OpenTelemetry set-up: an OTLP exporter when an endpoint is configured, otherwise a no-op tracer."""

from __future__ import annotations

from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.sdk.trace.sampling import TraceIdRatioBased

from facemint_core.settings import TracingSettings


def setup_tracing(service: str, settings: TracingSettings) -> TracerProvider | None:
    """Install a tracer provider exporting to ``settings.otlp_endpoint``; None when tracing is off."""
    if not settings.otlp_endpoint:
        return None
    from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter

    provider = TracerProvider(
        resource=Resource.create({"service.name": f"facemint-{service}"}),
        sampler=TraceIdRatioBased(settings.sample_ratio),
    )
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=settings.otlp_endpoint, insecure=True)))
    trace.set_tracer_provider(provider)
    return provider
