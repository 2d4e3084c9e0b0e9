"""An OTLP/gRPC trace receiver for tests and benchmarks: a real ``TraceService`` endpoint (the ``opentelemetry-proto``
messages) that keeps the spans the platform's services export, and renders a trace as an indented tree."""

from __future__ import annotations

import threading
from concurrent import futures
from typing import Any

import grpc
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc

PREFIXES = ("GATEWAY", "TASK_ORCHESTRATOR", "MEDIA_DECODER", "INFERENCE", "LIBRARY", "WEBHOOK_DISPATCHER")
"""The environment prefix of each service."""

KINDS = {1: "internal", 2: "server", 3: "client", 4: "producer", 5: "consumer"}


class OtlpReceiver(trace_service_pb2_grpc.TraceServiceServicer):  # type: ignore[misc]
    """An OTLP/gRPC trace endpoint on 127.0.0.1 (a free port) that keeps every span it is sent, flattened to dicts
    (``keep=False``: only counts them, for a benchmark), and the metadata of each export. ``tls``: serve TLS with this
    (private key, certificate chain), both PEM."""

    def __init__(self, keep: bool = True, tls: tuple[bytes, bytes] | None = None) -> None:
        self.keep = keep
        self.received = 0
        self.spans: list[dict[str, Any]] = []
        self.metadata: list[dict[str, str]] = []
        self._lock = threading.Lock()
        self.server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
        trace_service_pb2_grpc.add_TraceServiceServicer_to_server(self, self.server)
        if tls is None:
            self.port = self.server.add_insecure_port("127.0.0.1:0")
        else:
            self.port = self.server.add_secure_port("127.0.0.1:0", grpc.ssl_server_credentials([tls]))
        self.server.start()

    def Export(  # noqa: N802 - the OTLP method name
        self, request: trace_service_pb2.ExportTraceServiceRequest, context: grpc.ServicerContext
    ) -> trace_service_pb2.ExportTraceServiceResponse:
        got = []
        for resource_spans in request.resource_spans:
            resource = {a.key: a.value.string_value for a in resource_spans.resource.attributes}
            for scope_spans in resource_spans.scope_spans:
                for span in scope_spans.spans:
                    attributes = {}
                    for a in span.attributes:
                        value = a.value
                        attributes[a.key] = getattr(value, value.WhichOneof("value") or "string_value")
                    got.append(
                        {
                            "service": resource.get("service.name", "").removeprefix("facemint-"),
                            "trace_id": span.trace_id.hex(),
                            "span_id": span.span_id.hex(),
                            "parent_id": span.parent_span_id.hex(),
                            "name": span.name,
                            "kind": KINDS.get(span.kind, "unspecified"),
                            "start": span.start_time_unix_nano,
                            "end": span.end_time_unix_nano,
                            "attributes": attributes,
                        }
                    )
        with self._lock:
            self.metadata.append({k: str(v) for k, v in context.invocation_metadata()})
            self.received += len(got)
            if self.keep:
                self.spans.extend(got)
        return trace_service_pb2.ExportTraceServiceResponse()

    def trace(self, trace_id: str) -> list[dict[str, Any]]:
        """Every span received so far of one trace."""
        with self._lock:
            return [s for s in self.spans if s["trace_id"] == trace_id]

    def find(self, name: str, **attributes: Any) -> dict[str, Any] | None:
        """The first span received with this name and these attributes."""
        with self._lock:
            for span in self.spans:
                if span["name"] == name and all(span["attributes"].get(k) == v for k, v in attributes.items()):
                    return span
        return None

    def platform_env(self, batch_delay_ms: int = 200) -> dict[str, str]:
        """``extra_env`` for :func:`facemint_local.harness.start_platform` that makes every service export its spans
        here (plain gRPC, every trace sampled), in batches every ``batch_delay_ms`` instead of 5 s."""
        env = {"OTEL_BSP_SCHEDULE_DELAY": str(batch_delay_ms)}
        for prefix in PREFIXES:
            env[f"FACEMINT_{prefix}_TRACING__OTLP_ENDPOINT"] = f"127.0.0.1:{self.port}"
            env[f"FACEMINT_{prefix}_TRACING__INSECURE"] = "true"
            env[f"FACEMINT_{prefix}_TRACING__SAMPLE_RATIO"] = "1.0"
        return env

    def close(self) -> None:
        """Stop serving."""
        self.server.stop(0)


def render_tree(spans: list[dict[str, Any]]) -> str:
    """The spans of a trace as an indented tree: service, span name, start offset and duration in ms."""
    ids = {span["span_id"] for span in spans}
    by_parent: dict[str, list[dict[str, Any]]] = {}
    for span in spans:  # a span whose parent is not among them is shown as a root
        by_parent.setdefault(span["parent_id"] if span["parent_id"] in ids else "", []).append(span)
    t0 = min(s["start"] for s in spans)
    lines: list[str] = []

    def walk(parent: str, depth: int) -> None:
        for span in sorted(by_parent.get(parent, []), key=lambda s: s["start"]):
            offset, took = (span["start"] - t0) / 1e6, (span["end"] - span["start"]) / 1e6
            label = f"{'  ' * depth}{span['service']}: {span['name']}"
            lines.append(f"{label:<72} +{offset:8.1f} ms {took:8.1f} ms")
            walk(span["span_id"], depth + 1)

    walk("", 0)
    return "\n".join(lines)
