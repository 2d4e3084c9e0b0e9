"""Idempotency-Key on POST through real gateway processes and the real orchestrator."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

import asyncpg
import httpx
import pytest

from facemint_gateway.contract.account import CreatedKey
from facemint_gateway.idempotency import fingerprint, redact_secrets
from facemint_sdk import FacemintClient

if TYPE_CHECKING:
    from conftest import GatewayStack

TASK = {"type": "image", "media_url": "http://127.0.0.1:9/face.jpg", "attributes": ["age", "landmarks"]}


def post(url: str, key: str, idem: str, body: object, path: str = "/v1/create-detection-task") -> httpx.Response:
    """A POST with an Idempotency-Key."""
    return httpx.post(url + path, json=body, headers={"x-api-key": key, "Idempotency-Key": idem}, timeout=30)


async def count_tasks(db: asyncpg.Connection, account: str) -> int:
    """How many tasks the account has."""
    return int(await db.fetchval("SELECT count(*) FROM tasks WHERE account_id = $1", account))


def test_fingerprint_ignores_json_key_order_and_whitespace() -> None:
    a = fingerprint("POST", "/v1/x", b"", b'{"a": 1, "b": [1, 2]}')
    assert a == fingerprint("POST", "/v1/x", b"", b'{"b":[1,2],"a":1}')
    assert a != fingerprint("POST", "/v1/x", b"", b'{"a": 2, "b": [1, 2]}')
    assert a != fingerprint("POST", "/v1/y", b"", b'{"a": 1, "b": [1, 2]}')
    assert a != fingerprint("POST", "/v1/x", b"q=1", b'{"a": 1, "b": [1, 2]}')


def test_secrets_are_redacted_from_stored_bodies() -> None:
    key = "fm_abcdefgh_" + "c" * 32
    doc = {"key": key, "prefix": "fm_abcdefgh", "nested": [{"key": key}]}
    assert redact_secrets(doc) == {"key": None, "prefix": "fm_abcdefgh", "nested": [{"key": None}]}


@pytest.mark.integration
async def test_same_key_and_body_replays_the_original_response(
    gateway_stack: GatewayStack, db: asyncpg.Connection
) -> None:
    account, key, _ = gateway_stack.new_account()
    first = post(gateway_stack.url, key, "order-1", TASK)
    assert first.status_code == 201 and "idempotent-replayed" not in first.headers
    reordered = {"attributes": ["age", "landmarks"], "media_url": TASK["media_url"], "type": "image"}
    for url in gateway_stack.urls:  # either process, any key order
        again = post(url, key, "order-1", reordered)
        assert again.status_code == 201
        assert again.content == first.content  # same body: same task_id, same original request_id
        assert again.headers["idempotent-replayed"] == "true"
        assert again.headers["content-type"] == first.headers["content-type"]
        assert "x-ratelimit-remaining" in again.headers  # replays are counted like any request
    assert await count_tasks(db, account) == 1


@pytest.mark.integration
async def test_same_key_with_another_body_is_a_conflict(gateway_stack: GatewayStack, db: asyncpg.Connection) -> None:
    account, key, _ = gateway_stack.new_account()
    assert post(gateway_stack.url, key, "order-2", TASK).status_code == 201
    other = post(gateway_stack.urls[1], key, "order-2", {**TASK, "media_url": "http://127.0.0.1:9/other.jpg"})
    assert other.status_code == 409
    error = other.json()["error"]
    assert error["code"] == "conflict" and "already used with a different request" in error["message"]
    assert post(gateway_stack.url, key, "order-2", TASK, path="/v1/keys").status_code == 409  # another route
    assert await count_tasks(db, account) == 1


@pytest.mark.integration
async def test_keys_are_scoped_per_account(gateway_stack: GatewayStack) -> None:
    _, key_a, _ = gateway_stack.new_account()
    _, key_b, _ = gateway_stack.new_account()
    a = post(gateway_stack.url, key_a, "shared-key", TASK).json()
    b = post(gateway_stack.url, key_b, "shared-key", TASK).json()
    assert a["task_id"] != b["task_id"]


@pytest.mark.integration
async def test_records_expire_after_24_hours(gateway_stack: GatewayStack, db: asyncpg.Connection) -> None:
    account, key, _ = gateway_stack.new_account()
    first = post(gateway_stack.url, key, "old", TASK).json()
    # A day passes for the key's record and for the task created under it (whose creation id the key derives).
    await db.execute(
        "UPDATE idempotency_keys SET created_at = now() - interval '24 hours 1 minute' WHERE scope = $1", account
    )
    await db.execute(
        "UPDATE tasks SET created_at = now() - interval '24 hours 1 minute' WHERE account_id = $1", account
    )
    second = post(gateway_stack.url, key, "old", TASK)
    assert second.status_code == 201 and "idempotent-replayed" not in second.headers
    assert second.json()["task_id"] != first["task_id"]
    assert await count_tasks(db, account) == 2


@pytest.mark.integration
async def test_simultaneous_duplicates_create_one_task(gateway_stack: GatewayStack, db: asyncpg.Connection) -> None:
    account, key, _ = gateway_stack.new_account()
    headers = {"x-api-key": key, "Idempotency-Key": "burst"}
    async with httpx.AsyncClient(headers=headers, timeout=30) as client:
        answers = await asyncio.gather(
            *(client.post(f"{gateway_stack.urls[i % 2]}/v1/create-detection-task", json=TASK) for i in range(6))
        )
    created = {r.json()["task_id"] for r in answers if r.status_code == 201}
    in_flight = [r for r in answers if r.status_code == 409]
    assert len(created) == 1 and len(in_flight) + sum(r.status_code == 201 for r in answers) == 6
    assert all("still being processed" in r.json()["error"]["message"] for r in in_flight)
    assert all(r.headers["retry-after"] == "1" for r in in_flight)
    assert await count_tasks(db, account) == 1


@pytest.mark.integration
async def test_refusals_are_not_stored_so_a_retry_runs_again(gateway_stack: GatewayStack) -> None:
    _, key, _ = gateway_stack.new_account(concurrent_tasks=1)
    first = post(gateway_stack.url, key, "a", TASK).json()
    refused = post(gateway_stack.url, key, "b", TASK)
    assert refused.status_code == 429
    assert httpx.post(f"{gateway_stack.url}/v1/task/{first['task_id']}/cancel", headers={"x-api-key": key}).is_success
    retried = post(gateway_stack.url, key, "b", TASK)
    assert retried.status_code == 201 and "idempotent-replayed" not in retried.headers


@pytest.mark.integration
async def test_key_creation_replay_does_not_issue_a_second_key(gateway_stack: GatewayStack) -> None:
    _, key, _ = gateway_stack.new_account()
    first = post(gateway_stack.url, key, "new-key", {"name": "ci"}, path="/v1/keys")
    replay = post(gateway_stack.urls[1], key, "new-key", {"name": "ci"}, path="/v1/keys")
    assert first.status_code == replay.status_code == 201
    assert replay.json()["key_id"] == first.json()["key_id"] and replay.json()["key"] is None
    CreatedKey.model_validate(replay.json())  # the documented answer allows the replay's null secret
    keys = httpx.get(gateway_stack.url + "/v1/keys", headers={"x-api-key": key}).json()["keys"]
    assert len(keys) == 2


@pytest.mark.integration
def test_admin_posts_are_idempotent_too(gateway_stack: GatewayStack) -> None:
    headers = {"Authorization": f"Bearer {gateway_stack.admin_token}", "Idempotency-Key": "acct-1"}
    answers = [
        httpx.post(gateway_stack.url + "/admin/v1/accounts", json={"name": "Once"}, headers=headers) for _ in range(2)
    ]
    assert answers[0].json()["account"]["account_id"] == answers[1].json()["account"]["account_id"]
    assert answers[1].json()["api_key"]["key"] is None


@pytest.mark.integration
@pytest.mark.parametrize("value", ["", "x" * 256, "caf\u00e9"])
def test_malformed_idempotency_key_is_400(gateway_stack: GatewayStack, value: str) -> None:
    _, key, _ = gateway_stack.new_account()
    resp = httpx.post(
        gateway_stack.url + "/v1/create-detection-task",
        json=TASK,
        headers=[("x-api-key", key), ("Idempotency-Key", value.encode())],  # type: ignore[list-item]
    )
    assert resp.status_code == 400 and "Idempotency-Key" in resp.json()["error"]["message"]
    assert "x-ratelimit-remaining" in resp.headers


@pytest.mark.integration
def test_sdk_client_retries_are_safe(gateway_stack: GatewayStack) -> None:
    _, key, _ = gateway_stack.new_account()
    with FacemintClient(key, gateway_stack.url) as client:
        a = client.create_detection_task("image", TASK["media_url"], idempotency_key="sdk-1")
        b = client.create_detection_task("image", TASK["media_url"], idempotency_key="sdk-1")
        assert a == b
        task = client.get_task(a["task_id"])
        assert task["status"] in ("queued", "running") and task["media"]["url"] == TASK["media_url"]
        assert [t["task_id"] for t in client.iter_tasks(page_size=1)] == [a["task_id"]]
        assert client.cancel_task(a["task_id"])["status"] == "cancelled"
        assert client.wait_for_task(a["task_id"], timeout=5)["status"] == "cancelled"
        assert client.last_rate_limit is not None and client.last_rate_limit.limit == 60
        assert client.usage()["concurrent_tasks"]["active"] == 0
