"""Plan limits decided in CreateTask and usage metered with the terminal state, on the orchestrator's own schema."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import asyncpg
import pytest

from facemint.orchestrator.v1 import orchestrator_pb2
from facemint_core.errors import RateLimited
from facemint_core.schemas import service_dsn
from facemint_core.vocab import MEDIA_KINDS
from facemint_task_orchestrator.quota import billable_seconds, month_bounds, read_usage
from facemint_task_orchestrator.store import TaskStore

TTL = 3600.0


def test_billable_seconds_follow_the_api() -> None:
    assert billable_seconds("succeeded", "image", None, None) == 1.0  # an image counts 1 s = 1/60 minute
    assert billable_seconds("succeeded", "video", None, 15.0) == 15.0  # the span the sampled frames covered
    assert billable_seconds("succeeded", "video", None, 0.2) == 1.0  # at least 1 s
    assert billable_seconds("succeeded", "gif", None, None) == 1.0  # no analysed span: the minimum
    assert billable_seconds("failed", "image", "invalid_media", None) == 0.0  # failures are free...
    assert billable_seconds("failed", "gif", "no_faces_detected", 3.0) == 3.0  # ...except no_faces_detected
    assert billable_seconds("cancelled", "video", None, 30.0) == 0.0
    assert billable_seconds("running", "video", None, 30.0) == 0.0


@pytest.fixture
async def store(fresh_database: str) -> AsyncIterator[TaskStore]:
    """A TaskStore connected as the orchestrator's own role."""
    pool = await asyncpg.create_pool(service_dsn(fresh_database, "task-orchestrator"), min_size=1, max_size=12)
    assert pool is not None
    try:
        yield TaskStore(pool)
    finally:
        await pool.close()


def _spec(task_type: str = "image") -> orchestrator_pb2.TaskSpec:
    return orchestrator_pb2.TaskSpec(kind=MEDIA_KINDS[task_type], media_url="https://example.com/m")


def _limits(concurrent: int = 2, minutes: int = 100) -> orchestrator_pb2.TaskLimits:
    return orchestrator_pb2.TaskLimits(
        concurrent_tasks=concurrent, monthly_minutes=minutes, plan="free", retry_after_seconds=5
    )


@pytest.mark.integration
async def test_terminal_states_meter_usage_once(store: TaskStore) -> None:
    account = f"acct_{uuid.uuid4().hex[:8]}"

    async def finish(task_type: str, how: str, analysed: float = 0.0, code: str = "") -> None:
        row, _ = await store.create(account, _spec(task_type), 1, "req", "", TTL)
        task_id = row.task_id
        assert await store.start(task_id) is not None
        if how == "succeed":
            assert await store.succeed(task_id, {"frames": []}, 1, analysed) is not None
            assert await store.succeed(task_id, {"frames": []}, 1, analysed) is None  # a second end changes nothing
        elif how == "fail":
            await store.set_analysed(task_id, analysed)  # as the worker records it before a no_faces_detected end
            assert await store.fail(task_id, code, "x") is not None
            assert await store.fail(task_id, code, "x") is None
        else:
            assert await store.cancel(task_id) is not None

    await finish("image", "succeed")
    await finish("video", "succeed", 15.0)
    await finish("video", "fail", 10.0, "invalid_media")
    await finish("gif", "fail", 3.0, "no_faces_detected")
    await finish("video", "cancel")
    usage = await read_usage(store.pool, account)
    assert (usage.seconds_used, usage.tasks_billed, usage.active_tasks) == (19.0, 3, 0)
    month = await store.pool.fetchval("SELECT month FROM usage_monthly WHERE account_id = $1", account)
    assert month == month_bounds()[0].date()
    billed = await store.pool.fetch("SELECT billed_seconds FROM tasks WHERE account_id = $1", account)
    assert sorted(r["billed_seconds"] for r in billed) == [0.0, 0.0, 1.0, 3.0, 15.0]


@pytest.mark.integration
async def test_concurrent_limit_counts_queued_and_running_and_racing_creations_never_overshoot(
    store: TaskStore,
) -> None:
    account = f"acct_{uuid.uuid4().hex[:8]}"
    results = await asyncio.gather(
        *(store.create(account, _spec(), 1, "req", f"c{i}", TTL, _limits(concurrent=3)) for i in range(10)),
        return_exceptions=True,
    )
    created = [r for r in results if not isinstance(r, BaseException)]
    refused = [r for r in results if isinstance(r, RateLimited)]
    assert len(created) == 3 and len(refused) == 7
    assert refused[0].retry_after == 5
    assert "concurrent task limit reached: 3 tasks are queued or running and plan 'free' allows 3" in refused[0].message
    # A repeated creation id gets its stored task back, even at the limit (ADR 9); no new task.
    first_id = await store.pool.fetchval("SELECT creation_id FROM tasks WHERE task_id = $1", created[0][0].task_id)
    again, stored_now = await store.create(account, _spec(), 1, "req", first_id, TTL, _limits(concurrent=3))
    assert not stored_now and again.task_id == created[0][0].task_id
    # A finished task frees its slot.
    task_id = created[1][0].task_id
    await store.start(task_id)
    await store.cancel(task_id)
    await store.create(account, _spec(), 1, "req", "after", TTL, _limits(concurrent=3))
    assert (await read_usage(store.pool, account)).active_tasks == 3


@pytest.mark.integration
async def test_exhausted_monthly_minutes_refuse_until_the_next_month(store: TaskStore) -> None:
    account = f"acct_{uuid.uuid4().hex[:8]}"
    row, _ = await store.create(account, _spec("video"), 1, "req", "", TTL, _limits(minutes=1))
    await store.start(row.task_id)
    await store.succeed(row.task_id, {}, 1, 60.0)
    with pytest.raises(RateLimited) as refused:
        await store.create(account, _spec(), 1, "req", "", TTL, _limits(minutes=1))
    assert "monthly minutes exhausted: 1.00 of 1 minutes used on plan 'free'" in refused.value.message
    assert refused.value.retry_after >= 1
    # Without limits (an internal caller), nothing is checked.
    await store.create(account, _spec(), 1, "req", "", TTL)
