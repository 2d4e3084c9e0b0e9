"""The WebhookService gRPC API: delivery log, redelivery, ownership, secret read and rotation."""

from __future__ import annotations

import asyncio

import grpc
import pytest
from webhook_testkit import Env, Receiver, Reply, StartDispatcher, create_account, publish_event

from facemint.webhook.v1 import webhook_pb2, webhook_pb2_grpc
from facemint_core.errors import Conflict, Forbidden, InvalidRequest, from_rpc_error

pytestmark = pytest.mark.integration


async def stub_for(
    start_dispatcher: StartDispatcher, env: Env, **overrides: object
) -> webhook_pb2_grpc.WebhookServiceStub:
    """Start a dispatcher and return a stub on its gRPC port (its channel closes when the dispatcher stops)."""
    runtime = await start_dispatcher(env.settings(**overrides))
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{runtime.grpc_port}")
    runtime.on_stop("test channel", lambda _grace: channel.close())
    return webhook_pb2_grpc.WebhookServiceStub(channel)


async def error_of(call: object) -> Exception:
    """The FacemintError a call raised."""
    try:
        await call  # type: ignore[misc]
    except grpc.aio.AioRpcError as exc:
        return from_rpc_error(exc)
    raise AssertionError("the call succeeded")


async def test_list_deliveries_shows_every_attempt(
    env: Env, receiver: Receiver, start_dispatcher: StartDispatcher
) -> None:
    account = await create_account(env.dsn)
    receiver.answer(Reply(500))
    stub = await stub_for(start_dispatcher, env)
    event = await publish_event(env.js, account, receiver.url)
    await env.wait_state(event.task_id, "delivered")

    reply = await stub.ListDeliveries(webhook_pb2.ListDeliveriesRequest(account_id=account, task_id=event.task_id))
    (delivery,) = reply.deliveries
    assert delivery.task_id == event.task_id and delivery.event == "task.succeeded" and delivery.url == receiver.url
    assert delivery.state == "delivered" and delivery.max_attempts == 9 and delivery.next_attempt_at == ""
    assert delivery.completed_at and delivery.created_at and delivery.redelivery_of == ""
    assert [(a.number, a.status_code) for a in delivery.attempts] == [(1, 500), (2, 200)]
    assert all(a.attempted_at.endswith("Z") and a.latency_seconds > 0 for a in delivery.attempts)


async def test_redeliver_sends_a_new_delivery_of_the_same_body(
    env: Env, receiver: Receiver, start_dispatcher: StartDispatcher
) -> None:
    account = await create_account(env.dsn)
    stub = await stub_for(start_dispatcher, env)
    event = await publish_event(env.js, account, receiver.url)
    original = await env.wait_state(event.task_id, "delivered")

    again = await stub.Redeliver(webhook_pb2.RedeliverRequest(account_id=account, task_id=event.task_id))
    assert again.redelivery_of == original["delivery_id"] and again.delivery_id != original["delivery_id"]
    first, second = await receiver.wait_for(2)
    assert first.body == second.body
    assert second.header("X-Facemint-Delivery") == again.delivery_id
    reply = await stub.ListDeliveries(webhook_pb2.ListDeliveriesRequest(account_id=account, task_id=event.task_id))
    assert [d.delivery_id for d in reply.deliveries] == [original["delivery_id"], again.delivery_id]


async def test_redeliver_of_a_waiting_delivery_makes_it_due_now(
    env: Env, receiver: Receiver, start_dispatcher: StartDispatcher
) -> None:
    account = await create_account(env.dsn)
    receiver.answer(Reply(500))
    stub = await stub_for(start_dispatcher, env, schedule={"base_seconds": 3600})
    event = await publish_event(env.js, account, receiver.url)
    await receiver.wait_for(1)
    while not [a for a in await env.attempts(event.task_id) if a["finished_at"] is not None]:
        await asyncio.sleep(0.02)
    again = await stub.Redeliver(webhook_pb2.RedeliverRequest(account_id=account, task_id=event.task_id))
    assert again.redelivery_of == "" and again.state == "pending"
    await env.wait_state(event.task_id, "delivered", timeout=5)
    assert len(await env.fetch("SELECT 1 FROM webhook_deliveries")) == 1


async def test_another_accounts_deliveries_are_forbidden_and_an_unknown_task_has_none(
    env: Env, receiver: Receiver, start_dispatcher: StartDispatcher
) -> None:
    owner, other = await create_account(env.dsn), await create_account(env.dsn)
    stub = await stub_for(start_dispatcher, env)
    event = await publish_event(env.js, owner, receiver.url)
    await env.wait_state(event.task_id, "delivered")
    for_other = webhook_pb2.ListDeliveriesRequest(account_id=other, task_id=event.task_id)
    assert isinstance(await error_of(stub.ListDeliveries(for_other)), Forbidden)
    redeliver = webhook_pb2.RedeliverRequest(account_id=other, task_id=event.task_id)
    assert isinstance(await error_of(stub.Redeliver(redeliver)), Forbidden)
    # Whether a task exists is the task-orchestrator's to say (the gateway asks it first): here it has no deliveries.
    unknown = webhook_pb2.ListDeliveriesRequest(account_id=owner, task_id="task_unknown")
    assert list((await stub.ListDeliveries(unknown)).deliveries) == []


async def test_task_without_webhook_lists_nothing_and_cannot_be_redelivered(
    env: Env, start_dispatcher: StartDispatcher
) -> None:
    account = await create_account(env.dsn)
    stub = await stub_for(start_dispatcher, env)
    reply = await stub.ListDeliveries(webhook_pb2.ListDeliveriesRequest(account_id=account, task_id="task_quiet"))
    assert list(reply.deliveries) == []
    request = webhook_pb2.RedeliverRequest(account_id=account, task_id="task_quiet")
    assert isinstance(await error_of(stub.Redeliver(request)), Conflict)


async def test_rotation_keeps_the_previous_secret_for_the_grace_period(
    env: Env, start_dispatcher: StartDispatcher
) -> None:
    account = await create_account(env.dsn, secret="whsec_first")
    stub = await stub_for(start_dispatcher, env)
    current = await stub.GetWebhookSecret(webhook_pb2.GetWebhookSecretRequest(account_id=account))
    assert (current.secret, current.previous_secret, current.rotated_at) == ("whsec_first", "", "")

    rotated = await stub.RotateWebhookSecret(webhook_pb2.RotateWebhookSecretRequest(account_id=account))
    assert len(rotated.secret) == 64 and int(rotated.secret, 16) and rotated.secret != "whsec_first"
    assert rotated.previous_secret == "whsec_first" and rotated.previous_expires_at > rotated.rotated_at
    assert await stub.GetWebhookSecret(webhook_pb2.GetWebhookSecretRequest(account_id=account)) == rotated

    again = await stub.RotateWebhookSecret(webhook_pb2.RotateWebhookSecretRequest(account_id=account, grace_seconds=0))
    assert again.previous_secret == "" and again.previous_expires_at == ""
    bad = webhook_pb2.RotateWebhookSecretRequest(account_id=account, grace_seconds=-1)
    assert isinstance(await error_of(stub.RotateWebhookSecret(bad)), InvalidRequest)
    # The dispatcher owns the secrets: an account's first one is made when it is first asked for.
    first = await stub.GetWebhookSecret(webhook_pb2.GetWebhookSecretRequest(account_id="acc_new"))
    assert len(first.secret) == 64 and first.previous_secret == "" and first.rotated_at == ""
    assert await stub.GetWebhookSecret(webhook_pb2.GetWebhookSecretRequest(account_id="acc_new")) == first
