"""OpenTelemetry tracing: set-up, and the few helpers the services use to make spans and carry trace context.

Tracing is off unless ``TracingSettings.otlp_endpoint`` is set. Off, every helper here returns at once without
touching OpenTelemetry (no instrumentation is installed, :func:`span` is a shared no-op context manager, nothing is
injected into messages), so a service pays a function call per span site and nothing more.

On, :func:`setup_tracing` installs a tracer provider that samples parent-based at ``sample_ratio`` and exports over
OTLP/gRPC. The gateway's ASGI app and every gRPC channel and server get OpenTelemetry's maintained instrumentations
(:func:`instrument_asgi`, :func:`grpc_client_interceptors`, :func:`grpc_server_interceptors`); JetStream messages
carry the W3C ``traceparent`` in their headers (:func:`inject`, :func:`extract`); and work that outlives its message
(a task re-enqueued by the outbox sweep, a webhook delivery retried an hour later) stores the ``traceparent`` in its
row (:func:`current_traceparent`, :func:`context_from_traceparent`), so one trace follows a task from the POST to
its webhook whichever replica did what (ADR 0018).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping, MutableMapping
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased
from opentelemetry.trace import Span, SpanKind
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from facemint_core.settings import TracingSettings

_PROPAGATOR = TraceContextTextMapPropagator()
_TRACER: trace.Tracer = trace.get_tracer("facemint")
"""A proxy until :func:`setup_tracing` replaces it with the provider's own tracer (one indirection less per span)."""
_NO_SPAN: contextlib.nullcontext[None] = contextlib.nullcontext()
_enabled = False

OPS_PATHS = "/healthz,/readyz,/metrics"
"""Paths of the operational routes, never traced (probes and scrapes would drown the task traces)."""


def enabled() -> bool:
    """Whether this process exports traces."""
    return _enabled


def setup_tracing(service: str, settings: TracingSettings) -> TracerProvider | None:
    """Install a tracer provider exporting to ``settings.otlp_endpoint``; None when tracing is off.

    Args:
        service: The service's name; spans carry ``service.name=facemint-<service>``.
        settings: Endpoint, TLS or plain gRPC, headers (e.g. a collector's API key) and the sampling ratio of
            root spans (a span whose caller sampled it is always sampled: parent-based).
    """
    global _enabled, _TRACER
    if not settings.otlp_endpoint:
        return None
    import grpc
    from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter

    credentials = None
    if not settings.insecure:
        credentials = grpc.ssl_channel_credentials(
            root_certificates=settings.tls_ca_file.read_bytes() if settings.tls_ca_file else None,
            private_key=settings.tls_key_file.read_bytes() if settings.tls_key_file else None,
            certificate_chain=settings.tls_cert_file.read_bytes() if settings.tls_cert_file else None,
        )
    exporter = OTLPSpanExporter(
        endpoint=settings.otlp_endpoint,
        insecure=settings.insecure,
        credentials=credentials,
        headers=dict(settings.headers) or None,
    )
    provider = TracerProvider(
        resource=Resource.create({"service.name": f"facemint-{service}"}),
        sampler=ParentBased(TraceIdRatioBased(settings.sample_ratio)),
    )
    provider.add_span_processor(BatchSpanProcessor(exporter))
    trace.set_tracer_provider(provider)
    _TRACER = provider.get_tracer("facemint")
    _enabled = True
    return provider


def span(name: str, attributes: Mapping[str, Any] | None = None, *, parent: Context | None = None,
         kind: SpanKind = SpanKind.INTERNAL) -> contextlib.AbstractContextManager[Span | None]:  # fmt: skip
    """A span around a block, current inside it (a shared no-op when tracing is off).

    Args:
        name: The span's name, e.g. ``"media.fetch"``.
        attributes: Attributes known when the span starts; set more on the yielded span when it is not None.
        parent: The parent's context (from :func:`extract` or :func:`context_from_traceparent`) instead of the
            current one.
        kind: The span kind (``CONSUMER`` for a message's processing).
    """
    if not _enabled:
        return _NO_SPAN
    return _TRACER.start_as_current_span(name, context=parent, kind=kind, attributes=attributes)


def set_attributes(target: Span | None, attributes: Mapping[str, Any]) -> None:
    """Add attributes to a span from :func:`span` (nothing when tracing is off)."""
    if target is not None:
        target.set_attributes(attributes)


def name_request_span(method: str, route: str, request_id: str) -> None:
    """Name the current HTTP server span after the route template (``GET /v1/task/{task_id}``, not one name per task)
    and record the request id the client sees."""
    if _enabled:
        current = trace.get_current_span()
        current.update_name(f"{method} {route}")
        current.set_attributes({"http.route": route, "facemint.request_id": request_id})


def inject(headers: MutableMapping[str, str]) -> MutableMapping[str, str]:
    """Add the current trace context (``traceparent``) to message headers; returns them."""
    if _enabled:
        _PROPAGATOR.inject(headers)
    return headers


def extract(headers: Mapping[str, str] | None) -> Context | None:
    """The trace context a message carries, or None (no header, or tracing off)."""
    if not _enabled or not headers or "traceparent" not in headers:
        return None
    return _PROPAGATOR.extract(headers)


def current_traceparent() -> str | None:
    """The W3C ``traceparent`` of the current span, to store with work that outlives it; None when not traced."""
    if not _enabled:
        return None
    carrier: dict[str, str] = {}
    _PROPAGATOR.inject(carrier)
    return carrier.get("traceparent")


def context_from_traceparent(traceparent: str | None) -> Context | None:
    """The context a stored ``traceparent`` names (a parent for :func:`span`), or None."""
    if not _enabled or not traceparent:
        return None
    return _PROPAGATOR.extract({"traceparent": traceparent})


@contextlib.contextmanager
def resumed(traceparent: str | None) -> Iterator[None]:
    """Make a stored ``traceparent`` the current context inside the block (what is published there carries it)."""
    ctx = context_from_traceparent(traceparent)
    if ctx is None:
        yield
        return
    token = otel_context.attach(ctx)
    try:
        yield
    finally:
        otel_context.detach(token)


_HEALTH_PREFIXES = ("/grpc.health.v1.Health/", b"/grpc.health.v1.Health/")


def _not_health_check(details: Any) -> bool:
    """The gRPC instrumentation's filter: trace every call but the health service's (readiness probes between
    services run every few seconds, each would be a trace of its own, as ``OPS_PATHS`` would on HTTP).

    The instrumentation's own ``filters.health_check()`` gives the same answer at ~35 us a call (its isinstance
    checks against gRPC's abstract classes); this reads the method name (``bytes`` on an aio client) in ~0.3 us.
    """
    return not details.method.startswith(_HEALTH_PREFIXES[isinstance(details.method, bytes)])


def grpc_client_interceptors() -> list[Any] | None:
    """OpenTelemetry's gRPC aio client interceptors (a client span per call, context in the metadata; health
    checks untraced); None off."""
    if not _enabled:
        return None
    from opentelemetry.instrumentation.grpc import aio_client_interceptors

    return list(aio_client_interceptors(filter_=_not_health_check))  # type: ignore[no-untyped-call]


def grpc_server_interceptors() -> list[Any]:
    """OpenTelemetry's gRPC aio server interceptor (a server span per call, parent from the metadata; health checks
    untraced); [] off."""
    if not _enabled:
        return []
    from opentelemetry.instrumentation.grpc import aio_server_interceptor

    return [aio_server_interceptor(filter_=_not_health_check)]  # type: ignore[no-untyped-call]


def instrument_asgi(app: Any) -> Any:
    """Wrap an ASGI app in OpenTelemetry's ASGI middleware (a server span per request); the app itself when off."""
    if not _enabled:
        return app
    from opentelemetry.instrumentation.asgi import OpenTelemetryMiddleware

    return OpenTelemetryMiddleware(app, excluded_urls=OPS_PATHS, exclude_spans=["receive", "send"])
