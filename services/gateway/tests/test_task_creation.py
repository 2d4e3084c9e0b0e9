"""A create stores one task, whatever is retried: the RPC by the channel, the request by the client, or NATS down.

Real gateway and orchestrator processes, PostgreSQL and NATS (ADR 9).
"""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING

import asyncpg
import grpc
import httpx
import pytest

from facemint.common.v1 import common_pb2
from facemint.orchestrator.v1 import orchestrator_pb2, orchestrator_pb2_grpc
from facemint_local.servers import NatsServer

if TYPE_CHECKING:
    from conftest import GatewayStack

pytestmark = pytest.mark.integration

TASK = {"type": "image", "media_url": "http://127.0.0.1:9/face.jpg"}
SPEC = orchestrator_pb2.TaskSpec(
    kind=common_pb2.MEDIA_KIND_IMAGE, media_url="http://127.0.0.1:9/face.jpg", sample_rate=1
)


async def tasks_of(dsn: str, account: str) -> list[asyncpg.Record]:
    """The account's task rows, oldest first."""
    conn = await asyncpg.connect(dsn)
    try:
        return list(await conn.fetch("SELECT * FROM tasks WHERE account_id = $1 ORDER BY created_at", account))
    finally:
        await conn.close()


async def release_claims(dsn: str, account: str) -> None:
    """Delete the account's Idempotency-Key records: the state a claim released after a 5xx leaves behind."""
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute("DELETE FROM idempotency_keys WHERE scope = $1", account)
    finally:
        await conn.close()


def post_task(url: str, key: str, idempotency_key: str, body: dict[str, object] = TASK) -> httpx.Response:
    """POST /v1/create-detection-task with an Idempotency-Key."""
    headers = {"x-api-key": key, "Idempotency-Key": idempotency_key}
    return httpx.post(url + "/v1/create-detection-task", json=body, headers=headers, timeout=30)


async def create(target: str, request: orchestrator_pb2.CreateTaskRequest) -> orchestrator_pb2.Task:
    """One CreateTask call on a plain channel (no retries of its own)."""
    async with grpc.aio.insecure_channel(target) as channel:
        task: orchestrator_pb2.Task = await orchestrator_pb2_grpc.TaskServiceStub(channel).CreateTask(
            request, timeout=30
        )
        return task


@pytest.mark.slow
async def test_create_with_nats_down_answers_201_with_one_task_that_runs_once_nats_is_back(
    stack_with_own_nats: tuple[GatewayStack, NatsServer],
) -> None:
    stack, nats = stack_with_own_nats
    account, key, _ = stack.new_account()
    nats.stop()
    started = time.monotonic()
    resp = httpx.post(stack.url + "/v1/create-detection-task", json=TASK, headers={"x-api-key": key}, timeout=60)
    assert resp.status_code == 201, resp.text
    assert resp.json()["status"] == "queued" and time.monotonic() - started < 10  # main: 503 after ~27 s
    rows = await tasks_of(stack.dsn, account)
    assert [r["task_id"] for r in rows] == [resp.json()["task_id"]]

    nats.start()
    # The outbox sweep enqueues the job; the worker starts the task (without a media decoder its first attempt
    # fails and waits a minute for the next one).
    deadline = time.monotonic() + 60
    while (await tasks_of(stack.dsn, account))[0]["attempts"] == 0:
        assert time.monotonic() < deadline, "the task never started after NATS came back"
        await asyncio.sleep(0.2)
    await asyncio.sleep(3)  # several more sweeps
    rows = await tasks_of(stack.dsn, account)
    assert len(rows) == 1 and rows[0]["status"] == "running" and rows[0]["attempts"] == 1


async def test_create_task_repeated_with_one_creation_id_returns_the_task_it_stored(
    gateway_stack: GatewayStack,
) -> None:
    account, _, _ = gateway_stack.new_account()
    request = orchestrator_pb2.CreateTaskRequest(account_id=account, creation_id="rnd_repeat", spec=SPEC)
    first = await create(gateway_stack.orchestrator_target, request)
    again = await create(gateway_stack.orchestrator_target, request)
    assert again.task_id == first.task_id and again.created_at == first.created_at
    other = await create(
        gateway_stack.orchestrator_target,
        orchestrator_pb2.CreateTaskRequest(account_id=account, creation_id="rnd_other", spec=SPEC),
    )
    assert other.task_id != first.task_id
    assert [r["task_id"] for r in await tasks_of(gateway_stack.dsn, account)] == [first.task_id, other.task_id]


async def test_a_creation_id_older_than_its_ttl_creates_a_new_task(gateway_stack: GatewayStack) -> None:
    account, _, _ = gateway_stack.new_account()
    request = orchestrator_pb2.CreateTaskRequest(account_id=account, creation_id="key_reused", spec=SPEC)
    first = await create(gateway_stack.orchestrator_target, request)
    conn = await asyncpg.connect(gateway_stack.dsn)
    try:
        await conn.execute(
            "UPDATE tasks SET created_at = created_at - interval '25 hours' WHERE task_id = $1", first.task_id
        )
    finally:
        await conn.close()
    later = await create(gateway_stack.orchestrator_target, request)
    assert later.task_id != first.task_id
    rows = await tasks_of(gateway_stack.dsn, account)
    assert [(r["task_id"], r["creation_id"]) for r in rows] == [(first.task_id, None), (later.task_id, "key_reused")]


async def test_retry_with_the_idempotency_key_after_a_released_claim_gets_the_stored_task(
    gateway_stack: GatewayStack,
) -> None:
    """A 5xx releases the key's claim although the task may have been stored (a deadline that passed after the
    insert): the client's retry with the same key and body must get that task, not a second one."""
    account, key, _ = gateway_stack.new_account()
    first = post_task(gateway_stack.url, key, "order-7")
    assert first.status_code == 201, first.text
    await release_claims(gateway_stack.dsn, account)
    retry = post_task(gateway_stack.urls[1], key, "order-7")
    assert retry.status_code == 201 and "idempotent-replayed" not in retry.headers
    assert retry.json()["task_id"] == first.json()["task_id"]
    changed = post_task(gateway_stack.url, key, "order-7", {**TASK, "min_face_size": 40})
    assert changed.status_code == 409  # the retry's response is stored again: the key now refuses another body
    assert len(await tasks_of(gateway_stack.dsn, account)) == 1


async def test_retry_at_the_concurrent_task_limit_gets_its_stored_task_instead_of_429(
    gateway_stack: GatewayStack,
) -> None:
    account, key, _ = gateway_stack.new_account(concurrent_tasks=1)
    first = post_task(gateway_stack.url, key, "order-8")
    assert first.status_code == 201, first.text
    await release_claims(gateway_stack.dsn, account)
    retry = post_task(gateway_stack.url, key, "order-8")
    assert retry.status_code == 201, retry.text
    assert retry.json()["task_id"] == first.json()["task_id"]
    assert post_task(gateway_stack.url, key, "order-9").status_code == 429  # a new task is still refused
    assert len(await tasks_of(gateway_stack.dsn, account)) == 1
