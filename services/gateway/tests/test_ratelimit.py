"""Plan limits through real gateway processes: per-key request windows, concurrent tasks, monthly minutes."""

from __future__ import annotations

import asyncio
import math
import time
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import asyncpg
import httpx
import pytest

from facemint_gateway.ratelimit import month_bounds

if TYPE_CHECKING:
    from conftest import GatewayStack

pytestmark = [pytest.mark.integration]

TASK = {"type": "image", "media_url": "http://127.0.0.1:9/face.jpg"}


async def fresh_window(min_seconds_left: float = 15.0) -> int:
    """Wait, if needed, until the current one-minute window has enough time left; returns its end."""
    now = time.time()
    end = (math.floor(now / 60) + 1) * 60
    if end - now < min_seconds_left:
        await asyncio.sleep(end - now + 0.2)
        end += 60
    return end


def limits(resp: httpx.Response) -> tuple[int, int, int]:
    """The X-RateLimit-* headers."""
    h = resp.headers
    return int(h["x-ratelimit-limit"]), int(h["x-ratelimit-remaining"]), int(h["x-ratelimit-reset"])


async def test_headers_count_down_then_429_with_retry_after(gateway_stack: GatewayStack) -> None:
    _, key, _ = gateway_stack.new_account(requests_per_minute=5)
    window_end = await fresh_window()
    async with httpx.AsyncClient(base_url=gateway_stack.url, headers={"x-api-key": key}) as client:
        seen = []
        for _ in range(5):
            resp = await client.get("/v1/usage")
            assert resp.status_code == 200
            seen.append(limits(resp))
        assert seen == [(5, remaining, window_end) for remaining in (4, 3, 2, 1, 0)]
        refused = await client.get("/v1/usage")
    assert refused.status_code == 429
    assert refused.json()["error"]["code"] == "rate_limited"
    assert limits(refused) == (5, 0, window_end)
    retry_after = int(refused.headers["retry-after"])
    assert abs(retry_after - (window_end - time.time())) <= 2
    assert refused.json()["error"]["request_id"] == refused.headers["x-request-id"]


async def test_two_gateway_processes_share_the_limit_exactly(gateway_stack: GatewayStack) -> None:
    _, key, _ = gateway_stack.new_account(requests_per_minute=10)
    await fresh_window()
    headers = {"x-api-key": key}
    async with httpx.AsyncClient(headers=headers) as client:
        # Alternate between the processes: the 11th request is refused, whichever process receives it.
        answers = [await client.get(f"{gateway_stack.urls[i % 2]}/v1/usage") for i in range(11)]
    assert [r.status_code for r in answers] == [200] * 10 + [429]
    assert [limits(r)[1] for r in answers[:10]] == list(range(9, -1, -1))


async def test_concurrent_requests_on_two_processes_admit_exactly_the_limit(gateway_stack: GatewayStack) -> None:
    _, key, _ = gateway_stack.new_account(requests_per_minute=12)
    await fresh_window()
    async with httpx.AsyncClient(headers={"x-api-key": key}) as client:
        answers = await asyncio.gather(*(client.get(f"{gateway_stack.urls[i % 2]}/v1/usage") for i in range(30)))
    admitted = [r for r in answers if r.status_code == 200]
    assert len(admitted) == 12
    assert sorted(limits(r)[1] for r in admitted) == list(range(12))
    assert all(r.status_code == 429 and "retry-after" in r.headers for r in answers if r.status_code != 200)


async def test_each_key_has_its_own_window(gateway_stack: GatewayStack) -> None:
    _, key, _ = gateway_stack.new_account(requests_per_minute=2)
    await fresh_window()
    async with httpx.AsyncClient(base_url=gateway_stack.url) as client:
        other = (await client.post("/v1/keys", headers={"x-api-key": key}, json={"name": "second"})).json()["key"]
        assert (await client.get("/v1/usage", headers={"x-api-key": key})).status_code == 200
        assert (await client.get("/v1/usage", headers={"x-api-key": key})).status_code == 429
        resp = await client.get("/v1/usage", headers={"x-api-key": other})
    assert resp.status_code == 200 and limits(resp)[1] == 1


async def test_unauthenticated_requests_are_not_counted_and_carry_no_limit_headers(gateway_stack: GatewayStack) -> None:
    resp = httpx.get(gateway_stack.url + "/v1/usage", headers={"x-api-key": "fm_aaaaaaaa_" + "b" * 32})
    assert resp.status_code == 401 and "x-ratelimit-limit" not in resp.headers


async def test_concurrent_task_limit_counts_queued_and_running(gateway_stack: GatewayStack) -> None:
    account, key, _ = gateway_stack.new_account()  # free: 2 concurrent tasks
    async with httpx.AsyncClient(base_url=gateway_stack.url, headers={"x-api-key": key}) as client:
        first = await client.post("/v1/create-detection-task", json=TASK)
        second = await client.post("/v1/create-detection-task", json=TASK)
        assert first.status_code == second.status_code == 201
        refused = await client.post("/v1/create-detection-task", json=TASK)
        assert refused.status_code == 429
        error = refused.json()["error"]
        assert error["code"] == "rate_limited"
        assert "concurrent task limit reached" in error["message"] and "allows 2" in error["message"]
        assert int(refused.headers["retry-after"]) >= 1
        usage = (await client.get("/v1/usage")).json()
        assert usage["concurrent_tasks"] == {"active": 2, "limit": 2}
        cancelled = await client.post(f"/v1/task/{first.json()['task_id']}/cancel")
        assert cancelled.status_code == 200
        assert (await client.post("/v1/create-detection-task", json=TASK)).status_code == 201


async def test_racing_task_creation_on_two_processes_never_overshoots(gateway_stack: GatewayStack) -> None:
    _, key, _ = gateway_stack.new_account(concurrent_tasks=3)
    async with httpx.AsyncClient(headers={"x-api-key": key}, timeout=30) as client:
        answers = await asyncio.gather(
            *(client.post(f"{gateway_stack.urls[i % 2]}/v1/create-detection-task", json=TASK) for i in range(8))
        )
    assert sorted(r.status_code for r in answers) == [201] * 3 + [429] * 5


async def _add_usage(db: asyncpg.Connection, account: str, seconds: float) -> None:
    """Metered seconds this month, as the orchestrator records them when a task ends (its quota.meter, tested in
    the orchestrator's tests)."""
    await db.execute(
        """INSERT INTO usage_monthly AS u (account_id, month, seconds, tasks) VALUES ($1, $2, $3, 1)
           ON CONFLICT (account_id, month) DO UPDATE SET seconds = u.seconds + $3, tasks = u.tasks + 1""",
        account,
        month_bounds()[0].date(),
        seconds,
    )


async def test_exhausted_monthly_minutes_refuse_new_tasks(gateway_stack: GatewayStack, db: asyncpg.Connection) -> None:
    account, key, _ = gateway_stack.new_account(monthly_minutes=1)
    await _add_usage(db, account, 59.0)
    async with httpx.AsyncClient(base_url=gateway_stack.urls[1], headers={"x-api-key": key}) as client:
        assert (await client.post("/v1/create-detection-task", json=TASK)).status_code == 201
        await _add_usage(db, account, 1.0)
        usage = (await client.get("/v1/usage")).json()
        assert usage["minutes"] == {"used": 1.0, "limit": 1, "remaining": 0.0}
        refused = await client.post("/v1/create-detection-task", json=TASK)
    assert refused.status_code == 429
    assert refused.json()["error"]["code"] == "rate_limited"
    assert "monthly minutes exhausted" in refused.json()["error"]["message"]
    renews = month_bounds()[1]
    assert abs(int(refused.headers["retry-after"]) - (renews - datetime.now(UTC)).total_seconds()) < 5


async def test_plan_change_applies_at_once_in_every_process(gateway_stack: GatewayStack) -> None:
    account, key, _ = gateway_stack.new_account()
    for url in gateway_stack.urls:  # warm both caches with the free plan
        assert limits(httpx.get(url + "/v1/usage", headers={"x-api-key": key}))[0] == 60
    resp = gateway_stack.admin("PATCH", f"/admin/v1/accounts/{account}", {"plan": "starter"})
    assert resp.status_code == 200 and resp.json()["limits"]["requests_per_minute"] == 300
    deadline = time.monotonic() + 3
    while limits(httpx.get(gateway_stack.urls[1] + "/v1/usage", headers={"x-api-key": key}))[0] != 300:
        assert time.monotonic() < deadline, "the other process still applies the old plan"
        await asyncio.sleep(0.05)
    usage = httpx.get(gateway_stack.url + "/v1/usage", headers={"x-api-key": key}).json()
    assert usage["account"]["plan"] == "starter"
    assert usage["limits"] == {"requests_per_minute": 300, "concurrent_tasks": 8, "monthly_minutes": 1000}
