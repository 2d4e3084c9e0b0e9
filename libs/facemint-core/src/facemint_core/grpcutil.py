"""gRPC servers and channels: health, reflection, error mapping, metrics, deadlines and retries."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import grpc
from grpc_health.v1 import health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from facemint_core.errors import ERROR_CODE_METADATA_KEY, FacemintError
from facemint_core.lifecycle import ServiceRuntime
from facemint_core.logging import request_id_var, task_id_var
from facemint_core.metrics import RpcMetrics
from facemint_core.tracing import grpc_client_interceptors, grpc_server_interceptors

log = logging.getLogger(__name__)

RETRY_SAFE: dict[str, dict[str, bool]] = {
    "facemint.orchestrator.v1.TaskService": {
        "CreateTask": True,  # carries creation_id: a repeat returns the task the first call stored
        "GetTask": True,
        "ListTasks": True,
        "CancelTask": False,  # a repeat of a cancel that went through answers 409 "already cancelled"
    },
    "facemint.library.v1.LibraryService": {
        "CreateLibrary": False,  # a repeat of a create that went through answers 409 "already exists"
        "GetLibrary": True,
        "ListLibraries": True,
        "UpdateLibrary": True,  # sets the given fields: a repeat stores the same values
        "DeleteLibrary": False,  # a repeat of a delete that went through answers 404
        "EnrollFace": False,  # each call adds one more reference face
        "ListPersons": True,
        "GetPerson": True,
        "DeletePerson": False,
        "DeleteFace": False,
        "Search": True,
        "Compare": True,
    },
    "facemint.webhook.v1.WebhookService": {
        "ListDeliveries": True,
        "Redeliver": False,  # a repeat may send the webhook once more
        "GetWebhookSecret": True,
        "RotateWebhookSecret": False,  # a repeat replaces the new secret too and drops the one receivers still use
    },
    "facemint.media_decoder.v1.MediaDecoderService": {"AnalyzeMedia": True, "ProbeMedia": True},
    "facemint.inference.v1.InferenceService": {
        "AnalyzeFrames": True,
        "AnalyzeFrameStream": True,
        "GetModelInfo": True,
    },
}
"""Whether a channel may send an RPC again after UNAVAILABLE, for every RPC of every service.

UNAVAILABLE does not prove that the server did nothing (a connection can break after the server has acted), so only
reads, pure computations and writes that carry an idempotency id are repeated; any other RPC is sent once and its
caller sees the error (gRPC still re-sends transparently a call that never left the client).
"""

_RETRY_SERVICE_CONFIG = json.dumps(
    {
        "methodConfig": [
            {
                "name": [
                    {"service": service, "method": method}
                    for service, methods in RETRY_SAFE.items()
                    for method, safe in methods.items()
                    if safe
                ],
                "retryPolicy": {
                    "maxAttempts": 5,
                    "initialBackoff": "0.1s",
                    "maxBackoff": "2s",
                    "backoffMultiplier": 2,
                    "retryableStatusCodes": ["UNAVAILABLE"],
                },
            }
        ]
    }
)


def channel_options(max_message_bytes: int = 64 * 1024 * 1024) -> list[tuple[str, Any]]:
    """Channel options: message size limits, retries on UNAVAILABLE of the retry-safe RPCs, keepalive."""
    return [
        ("grpc.max_send_message_length", max_message_bytes),
        ("grpc.max_receive_message_length", max_message_bytes),
        ("grpc.enable_retries", 1),
        ("grpc.service_config", _RETRY_SERVICE_CONFIG),
        ("grpc.keepalive_time_ms", 30_000),
    ]


def open_channel(target: str, max_message_bytes: int = 64 * 1024 * 1024) -> grpc.aio.Channel:
    """Open an insecure channel (in-cluster traffic is plain gRPC) that retries the retry-safe RPCs on UNAVAILABLE
    (and traces its calls when tracing is on)."""
    return grpc.aio.insecure_channel(
        target, options=channel_options(max_message_bytes), interceptors=grpc_client_interceptors()
    )


PRIORITY_METADATA = ("x-priority", "interactive")
"""Call metadata that asks the callee to serve this call before background work (a still image's frame)."""


def call_metadata(extra: dict[str, str] | None = None) -> list[tuple[str, str]]:
    """Metadata that carries the current request and task ids to the callee."""
    md = [("x-request-id", request_id_var.get()), ("x-task-id", task_id_var.get())]
    md += list((extra or {}).items())
    return [(k, v) for k, v in md if v]


def _bind_context(context: grpc.aio.ServicerContext) -> None:
    for key, value in context.invocation_metadata() or ():
        if key == "x-request-id":
            request_id_var.set(str(value))
        elif key == "x-task-id":
            task_id_var.set(str(value))


async def _abort(context: grpc.aio.ServicerContext, exc: BaseException) -> None:
    if isinstance(exc, FacemintError):
        context.set_trailing_metadata(((ERROR_CODE_METADATA_KEY, exc.code),))
        await context.abort(exc.grpc_status, exc.message)
    log.exception("unhandled error in RPC", exc_info=exc)
    context.set_trailing_metadata(((ERROR_CODE_METADATA_KEY, "internal_error"),))
    await context.abort(grpc.StatusCode.INTERNAL, "internal error")


class ServerInterceptor(grpc.aio.ServerInterceptor):
    """Maps FacemintError to status + public code, binds request/task ids to logs, records metrics."""

    def __init__(self, metrics: RpcMetrics) -> None:
        self.metrics = metrics

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        handler = await continuation(handler_call_details)
        if handler is None:
            return handler
        method = handler_call_details.method.rsplit("/", 1)[-1]
        metrics = self.metrics

        def record(start: float, code: str) -> None:
            metrics.requests.labels(method, code).inc()
            metrics.latency.labels(method).observe(time.perf_counter() - start)

        if handler.unary_unary:
            inner_uu = handler.unary_unary

            async def unary_unary(request: Any, context: grpc.aio.ServicerContext) -> Any:
                _bind_context(context)
                start = time.perf_counter()
                try:
                    response = await inner_uu(request, context)
                except grpc.aio.AbortError:
                    record(start, str(context.code() or "ABORTED"))
                    raise
                except BaseException as exc:
                    record(
                        start,
                        getattr(exc, "code", "internal_error") if isinstance(exc, FacemintError) else "internal_error",
                    )
                    await _abort(context, exc)
                record(start, "OK")
                return response

            return grpc.unary_unary_rpc_method_handler(
                unary_unary, handler.request_deserializer, handler.response_serializer
            )
        if handler.unary_stream:
            inner_us = handler.unary_stream

            async def unary_stream(request: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
                _bind_context(context)
                start = time.perf_counter()
                try:
                    async for item in inner_us(request, context):
                        yield item
                except grpc.aio.AbortError:
                    record(start, "ABORTED")
                    raise
                except BaseException as exc:
                    record(start, exc.code if isinstance(exc, FacemintError) else "internal_error")
                    await _abort(context, exc)
                record(start, "OK")

            return grpc.unary_stream_rpc_method_handler(
                unary_stream, handler.request_deserializer, handler.response_serializer
            )
        if handler.stream_stream:
            inner_ss = handler.stream_stream

            async def stream_stream(request_iter: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
                _bind_context(context)
                start = time.perf_counter()
                try:
                    async for item in inner_ss(request_iter, context):
                        yield item
                except grpc.aio.AbortError:
                    record(start, "ABORTED")
                    raise
                except BaseException as exc:
                    record(start, exc.code if isinstance(exc, FacemintError) else "internal_error")
                    await _abort(context, exc)
                record(start, "OK")

            return grpc.stream_stream_rpc_method_handler(
                stream_stream, handler.request_deserializer, handler.response_serializer
            )
        return handler


async def start_grpc_server(
    runtime: ServiceRuntime,
    register: Callable[[grpc.aio.Server], None],
    service_names: list[str],
) -> grpc.aio.Server:
    """Start the service's gRPC server with health, reflection and the standard interceptor.

    Args:
        runtime: The running service; its gRPC settings give the address, the bound port is stored back.
        register: Adds the service's servicers to the server.
        service_names: Full names of the registered services, for reflection.
    """
    cfg = runtime.settings.grpc
    server = grpc.aio.server(
        interceptors=[*grpc_server_interceptors(), ServerInterceptor(RpcMetrics(runtime.name))],
        options=[
            ("grpc.max_send_message_length", cfg.max_message_bytes),
            ("grpc.max_receive_message_length", cfg.max_message_bytes),
            # Clients reconnect (and re-resolve) at least every few minutes, so new replicas get traffic.
            ("grpc.max_connection_age_ms", cfg.max_connection_age_seconds * 1000),
            ("grpc.max_connection_age_grace_ms", 30_000),
        ],
    )
    register(server)
    health_pb2_grpc.add_HealthServicer_to_server(runtime.readiness.grpc_health, server)
    reflection.enable_server_reflection([*service_names, "grpc.health.v1.Health", reflection.SERVICE_NAME], server)
    runtime.grpc_port = server.add_insecure_port(f"{cfg.host}:{cfg.port}")
    await server.start()

    async def stop(grace: float) -> None:
        await server.stop(grace)

    runtime.on_stop("grpc", stop)
    return server
