"""gRPC servers and channels: health, reflection, error mapping and call metadata (one server and one client
interceptor), metrics, deadlines and retries."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import grpc
from grpc_health.v1 import health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from facemint_core.errors import (
    ERROR_CODE_METADATA_KEY,
    RETRY_AFTER_METADATA_KEY,
    FacemintError,
    RateLimited,
    from_rpc_error,
)
from facemint_core.lifecycle import ServiceRuntime
from facemint_core.logging import request_id_var, task_id_var
from facemint_core.metrics import RpcMetrics
from facemint_core.tracing import grpc_client_interceptors, grpc_server_interceptors
from facemint_core.vocab import MAX_MESSAGE_BYTES

log = logging.getLogger(__name__)

RETRY_SAFE: dict[str, dict[str, bool]] = {
    "facemint.orchestrator.v1.TaskService": {
        "CreateTask": True,  # carries creation_id: a repeat returns the task the first call stored
        "GetTask": True,
        "ListTasks": True,
        "CancelTask": False,  # a repeat of a cancel that went through answers 409 "already cancelled"
        "GetUsage": True,
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
        # One subchannel per address the target names or resolves to, each call sent to the next ready one: a
        # target listing several replicas (``ipv4:127.0.0.1:A,127.0.0.1:B``, a headless Service) spreads the calls
        # and skips a replica that is down; a single address behaves as before (ADR 13).
        "loadBalancingConfig": [{"round_robin": {}}],
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
        ],
    }
)


def channel_options(max_message_bytes: int = MAX_MESSAGE_BYTES) -> list[tuple[str, Any]]:
    """Channel options: message size limits, round robin over the target's addresses, retries on UNAVAILABLE of
    the retry-safe RPCs, keepalive, and connections of its own.

    gRPC shares connections (subchannels) between every channel of a process that has the same address and options.
    A shared one that failed waits out its reconnect backoff (up to two minutes), so a new channel to a server that
    has just started on that address, a restarted peer or a test server on a reused port, failed at once with
    "connections to all backends failing". Each service opens one channel per peer, so sharing saved nothing.
    """
    return [
        ("grpc.use_local_subchannel_pool", 1),
        ("grpc.max_send_message_length", max_message_bytes),
        ("grpc.max_receive_message_length", max_message_bytes),
        ("grpc.enable_retries", 1),
        ("grpc.service_config", _RETRY_SERVICE_CONFIG),
        ("grpc.keepalive_time_ms", 30_000),
    ]


PRIORITY_METADATA = ("x-priority", "interactive")
"""Call metadata that asks the callee to serve this call before background work (a still image's frame)."""


def _with_ids(details: grpc.aio.ClientCallDetails) -> grpc.aio.ClientCallDetails:
    """The call's details with the current request and task ids added to its metadata."""
    ids = [
        (key, value)
        for key, value in (("x-request-id", request_id_var.get()), ("x-task-id", task_id_var.get()))
        if value
    ]
    if not ids:
        return details
    return details._replace(metadata=grpc.aio.Metadata(*(details.metadata or ()), *ids))


class _UnaryClientInterceptor(grpc.aio.UnaryUnaryClientInterceptor):
    """Sends the current request and task ids with every call; a peer's error is raised as the FacemintError it
    raised there (:func:`facemint_core.errors.from_rpc_error`)."""

    async def intercept_unary_unary(self, continuation: Any, details: grpc.aio.ClientCallDetails, request: Any) -> Any:
        call = await continuation(_with_ids(details), request)
        try:
            return await call
        except grpc.aio.AioRpcError as exc:
            raise from_rpc_error(exc) from None


class _StreamClientInterceptor(grpc.aio.UnaryStreamClientInterceptor):
    """The same for calls answered with a stream: an error in the stream is raised by the iteration."""

    async def intercept_unary_stream(
        self, continuation: Any, details: grpc.aio.ClientCallDetails, request: Any
    ) -> AsyncIterator[Any]:
        call = await continuation(_with_ids(details), request)

        async def responses() -> AsyncIterator[Any]:
            try:
                async for response in call:
                    yield response
            except grpc.aio.AioRpcError as exc:
                raise from_rpc_error(exc) from None

        return responses()


def open_channel(
    target: str, max_message_bytes: int = MAX_MESSAGE_BYTES, typed_errors: bool = True
) -> grpc.aio.Channel:
    """Open an insecure channel (in-cluster traffic is plain gRPC) that retries the retry-safe RPCs on UNAVAILABLE
    (and traces its calls when tracing is on).

    Args:
        target: ``host:port`` of the service.
        max_message_bytes: The largest message sent or received.
        typed_errors: Send the request and task ids with every call and raise a peer's error as the FacemintError
            it raised; False gives the plain ``AioRpcError`` (for tests of the wire).
    """
    interceptors: list[Any] = grpc_client_interceptors() or []
    if typed_errors:
        interceptors += [_UnaryClientInterceptor(), _StreamClientInterceptor()]
    return grpc.aio.insecure_channel(
        target, options=channel_options(max_message_bytes), interceptors=interceptors or None
    )


class _Rpc:
    """One served call: binds its request and task ids to the logs, times it, records its outcome and turns an
    exception into the call's status (a FacemintError keeps its status and public code; anything else is an
    INTERNAL ``internal_error``)."""

    __slots__ = ("context", "method", "metrics", "start")

    def __init__(self, metrics: RpcMetrics, method: str, context: grpc.aio.ServicerContext) -> None:
        for key, value in context.invocation_metadata() or ():
            if key == "x-request-id":
                request_id_var.set(str(value))
            elif key == "x-task-id":
                task_id_var.set(str(value))
        self.metrics, self.method, self.context, self.start = metrics, method, context, time.perf_counter()

    def record(self, code: str) -> None:
        self.metrics.requests.labels(self.method, code).inc()
        self.metrics.latency.labels(self.method).observe(time.perf_counter() - self.start)

    async def fail(self, exc: BaseException) -> None:
        """Record a failed call and end it with the status ``exc`` maps to (always raises)."""
        if isinstance(exc, grpc.aio.AbortError):  # the servicer aborted the call itself
            self.record(str(self.context.code() or "ABORTED"))
            raise exc
        if isinstance(exc, FacemintError):
            self.record(exc.code)
            trailing = [(ERROR_CODE_METADATA_KEY, exc.code)]
            if isinstance(exc, RateLimited) and exc.retry_after:
                trailing.append((RETRY_AFTER_METADATA_KEY, str(exc.retry_after)))
            self.context.set_trailing_metadata(tuple(trailing))
            await self.context.abort(exc.grpc_status, exc.message)
        self.record("internal_error")
        log.exception("unhandled error in RPC", exc_info=exc)
        self.context.set_trailing_metadata(((ERROR_CODE_METADATA_KEY, "internal_error"),))
        await self.context.abort(grpc.StatusCode.INTERNAL, "internal error")


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
        if handler.unary_unary:
            inner_unary = handler.unary_unary

            async def unary(request: Any, context: grpc.aio.ServicerContext) -> Any:
                rpc = _Rpc(metrics, method, context)
                try:
                    response = await inner_unary(request, context)
                except BaseException as exc:
                    await rpc.fail(exc)
                rpc.record("OK")
                return response

            return grpc.unary_unary_rpc_method_handler(unary, handler.request_deserializer, handler.response_serializer)
        inner_stream = handler.unary_stream or handler.stream_stream
        if inner_stream is None:  # client streaming with a single answer: not used by any service
            return handler

        async def stream(request: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
            rpc = _Rpc(metrics, method, context)
            try:
                async for item in inner_stream(request, context):
                    yield item
            except BaseException as exc:
                await rpc.fail(exc)
            rpc.record("OK")

        make = grpc.unary_stream_rpc_method_handler if handler.unary_stream else grpc.stream_stream_rpc_method_handler
        return make(stream, handler.request_deserializer, handler.response_serializer)


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
