"""Channel retries: every RPC has a decision, and only the retry-safe ones are sent again after UNAVAILABLE."""

from __future__ import annotations

from collections import Counter

import grpc
import pytest

from facemint.inference.v1 import inference_pb2
from facemint.library.v1 import library_pb2
from facemint.media_decoder.v1 import media_decoder_pb2
from facemint.orchestrator.v1 import orchestrator_pb2, orchestrator_pb2_grpc
from facemint.webhook.v1 import webhook_pb2, webhook_pb2_grpc
from facemint_core.grpcutil import RETRY_SAFE, open_channel


def test_every_rpc_of_every_service_has_a_retry_decision() -> None:
    declared = {
        service.full_name: set(service.methods_by_name)
        for module in (orchestrator_pb2, library_pb2, webhook_pb2, media_decoder_pb2, inference_pb2)
        for service in module.DESCRIPTOR.services_by_name.values()
    }
    assert {service: set(methods) for service, methods in RETRY_SAFE.items()} == declared


class _Down:
    """Answers UNAVAILABLE to every call and counts the calls, as a server that drops them would look."""

    def __init__(self) -> None:
        self.calls: Counter[str] = Counter()

    async def refuse(self, name: str, context: grpc.aio.ServicerContext) -> None:
        self.calls[name] += 1
        await context.abort(grpc.StatusCode.UNAVAILABLE, "try again")


class _Tasks(orchestrator_pb2_grpc.TaskServiceServicer):
    def __init__(self, down: _Down) -> None:
        self.down = down

    async def CreateTask(self, request, context):  # type: ignore[no-untyped-def]  # noqa: N802
        await self.down.refuse("CreateTask", context)

    async def GetTask(self, request, context):  # type: ignore[no-untyped-def]  # noqa: N802
        await self.down.refuse("GetTask", context)

    async def CancelTask(self, request, context):  # type: ignore[no-untyped-def]  # noqa: N802
        await self.down.refuse("CancelTask", context)


class _Webhooks(webhook_pb2_grpc.WebhookServiceServicer):
    def __init__(self, down: _Down) -> None:
        self.down = down

    async def GetWebhookSecret(self, request, context):  # type: ignore[no-untyped-def]  # noqa: N802
        await self.down.refuse("GetWebhookSecret", context)

    async def RotateWebhookSecret(self, request, context):  # type: ignore[no-untyped-def]  # noqa: N802
        await self.down.refuse("RotateWebhookSecret", context)


@pytest.mark.integration
async def test_channel_repeats_reads_and_creates_with_an_id_but_sends_other_writes_once() -> None:
    down = _Down()
    server = grpc.aio.server()
    orchestrator_pb2_grpc.add_TaskServiceServicer_to_server(_Tasks(down), server)
    webhook_pb2_grpc.add_WebhookServiceServicer_to_server(_Webhooks(down), server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    channel = open_channel(f"127.0.0.1:{port}", typed_errors=False)
    tasks, hooks = orchestrator_pb2_grpc.TaskServiceStub(channel), webhook_pb2_grpc.WebhookServiceStub(channel)
    calls = (
        (tasks.CreateTask, orchestrator_pb2.CreateTaskRequest(account_id="a", creation_id="c")),
        (tasks.GetTask, orchestrator_pb2.GetTaskRequest(account_id="a", task_id="t")),
        (tasks.CancelTask, orchestrator_pb2.CancelTaskRequest(account_id="a", task_id="t")),
        (hooks.GetWebhookSecret, webhook_pb2.GetWebhookSecretRequest(account_id="a")),
        (hooks.RotateWebhookSecret, webhook_pb2.RotateWebhookSecretRequest(account_id="a")),
    )
    try:
        for method, request in calls:
            with pytest.raises(grpc.aio.AioRpcError) as caught:
                await method(request, timeout=20)
            assert caught.value.code() == grpc.StatusCode.UNAVAILABLE
    finally:
        await channel.close()
        await server.stop(0)
    assert down.calls == {
        "CreateTask": 5,  # safe: the creation id makes a repeat return the first call's task
        "GetTask": 5,
        "CancelTask": 1,
        "GetWebhookSecret": 5,
        "RotateWebhookSecret": 1,  # a second rotation would drop the secret receivers still verify with
    }


class _Counting(webhook_pb2_grpc.WebhookServiceServicer):
    def __init__(self) -> None:
        self.calls = 0

    async def GetWebhookSecret(self, request, context):  # type: ignore[no-untyped-def]  # noqa: N802
        self.calls += 1
        return webhook_pb2.WebhookSecret(secret="s")

    async def RotateWebhookSecret(self, request, context):  # type: ignore[no-untyped-def]  # noqa: N802
        self.calls += 1
        return webhook_pb2.WebhookSecret(secret="s")


@pytest.mark.integration
async def test_a_target_listing_replicas_spreads_calls_and_skips_a_stopped_one() -> None:
    """``ipv4:A,B`` (the local platform's target for a replicated service) reaches both replicas, not only the first,
    and the calls go on, all to the survivor, once one replica stops."""
    servicers, servers, ports = [_Counting(), _Counting()], [grpc.aio.server(), grpc.aio.server()], []
    for servicer, server in zip(servicers, servers, strict=True):
        webhook_pb2_grpc.add_WebhookServiceServicer_to_server(servicer, server)
        ports.append(server.add_insecure_port("127.0.0.1:0"))
        await server.start()
    channel = open_channel("ipv4:" + ",".join(f"127.0.0.1:{port}" for port in ports))
    stub = webhook_pb2_grpc.WebhookServiceStub(channel)
    request = webhook_pb2.GetWebhookSecretRequest(account_id="a")
    try:
        for _ in range(20):
            await stub.GetWebhookSecret(request, timeout=5)
        # Round robin: [10, 10], or [9, 11] when one address was connected before the other (pick_first: [20, 0]).
        first = [s.calls for s in servicers]
        assert sum(first) == 20 and min(first) >= 8, first
        await servers[0].stop(None)
        for _ in range(10):
            await stub.GetWebhookSecret(request, timeout=5)  # retry-safe: a call that met the stopped one goes again
        assert servicers[1].calls == first[1] + 10 and servicers[0].calls == first[0]
    finally:
        await channel.close()
        for server in servers:
            await server.stop(None)


@pytest.mark.integration
async def test_a_new_channel_reaches_a_server_started_on_an_address_whose_last_server_failed() -> None:
    """A channel to a port whose former server stopped (a restarted peer, a test server on a reused port) connects
    at once: it does not inherit another channel's failed connection and its reconnect backoff."""
    first = grpc.aio.server()
    webhook_pb2_grpc.add_WebhookServiceServicer_to_server(_Counting(), first)
    port = first.add_insecure_port("127.0.0.1:0")
    await first.start()
    old = open_channel(f"127.0.0.1:{port}", typed_errors=False)
    request = webhook_pb2.GetWebhookSecretRequest(account_id="a")
    await webhook_pb2_grpc.WebhookServiceStub(old).GetWebhookSecret(request, timeout=5)
    await first.stop(None)
    with pytest.raises(grpc.aio.AioRpcError):  # the old channel's connection fails and backs off
        await webhook_pb2_grpc.WebhookServiceStub(old).GetWebhookSecret(request, timeout=5)
    second, servicer = grpc.aio.server(), _Counting()
    webhook_pb2_grpc.add_WebhookServiceServicer_to_server(servicer, second)
    assert second.add_insecure_port(f"127.0.0.1:{port}") == port
    await second.start()
    new = open_channel(f"127.0.0.1:{port}", typed_errors=False)
    try:  # a write sent once: no retry hides a refused connection
        await webhook_pb2_grpc.WebhookServiceStub(new).RotateWebhookSecret(
            webhook_pb2.RotateWebhookSecretRequest(account_id="a"), timeout=5
        )
        assert servicer.calls == 1
    finally:
        await new.close()
        await old.close()
        await second.stop(None)
