"""Plan limits shared by every gateway process through PostgreSQL: requests per minute, concurrent tasks, minutes.

- Requests per minute, per key: fixed one-minute windows aligned on the database clock, one counter row per key
  per window, incremented by ``INSERT ... ON CONFLICT DO UPDATE SET count = count + n RETURNING count``. The
  increments are group-committed: while one statement is in flight, the requests that arrive (for any key) wait
  and go together in the next one, each key incremented by its number of requests, keys in a fixed order (no
  deadlock between processes). Each request then takes its own position in its key's returned range, in
  arrival order, so counts stay exact across processes while a busy gateway makes one round trip per batch
  instead of one per request. Headers ``X-RateLimit-Limit``, ``-Remaining`` and ``-Reset`` (unix seconds, the
  end of the window) describe the outcome; past the limit the answer is 429 ``rate_limited`` with
  ``Retry-After``.
- Concurrent tasks and monthly minutes, per account: decided by the task-orchestrator, which owns tasks and
  meters their usage: ``POST /v1/create-detection-task`` passes the plan's limits in ``CreateTask`` and the
  orchestrator refuses a task past them (RESOURCE_EXHAUSTED with a retry-after, answered here as 429 with
  ``Retry-After``). ``GET /v1/usage`` reads the numbers with ``GetUsage`` (ADR 14).
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import asyncpg

from facemint.orchestrator.v1 import orchestrator_pb2
from facemint_core.timeutil import iso
from facemint_gateway.auth import Account

WINDOW_SECONDS = 60

_HIT_SQL = f"""
WITH w AS (SELECT floor(extract(epoch FROM now()) / {WINDOW_SECONDS})::bigint * {WINDOW_SECONDS} AS start)
INSERT INTO rate_limit_counters AS c (key_id, window_start, count)
SELECT t.key_id, w.start, t.n FROM unnest($1::text[], $2::integer[]) AS t(key_id, n), w ORDER BY t.key_id
ON CONFLICT (key_id, window_start) DO UPDATE SET count = c.count + EXCLUDED.count
RETURNING key_id, window_start, count
"""


@dataclass(frozen=True)
class RateDecision:
    """The outcome of counting one request against its key's window."""

    limit: int
    count: int
    reset: int  # unix seconds at which the window ends

    @property
    def allowed(self) -> bool:
        """True while the count is within the limit."""
        return self.count <= self.limit

    @property
    def remaining(self) -> int:
        """Requests left in this window."""
        return max(0, self.limit - self.count)

    def retry_after(self) -> int:
        """Whole seconds until the window ends (at least 1)."""
        return max(1, math.ceil(self.reset - time.time()))

    def headers(self) -> list[tuple[bytes, bytes]]:
        """The ``X-RateLimit-*`` headers (raw ASGI form)."""
        return [
            (b"x-ratelimit-limit", str(self.limit).encode()),
            (b"x-ratelimit-remaining", str(self.remaining).encode()),
            (b"x-ratelimit-reset", str(self.reset).encode()),
        ]


_Waiter = tuple[str, int, "asyncio.Future[RateDecision]"]


class RateLimiter:
    """Counts requests per key per minute in PostgreSQL, group-committing concurrent requests.

    Args:
        pool: The connections to use.
        max_in_flight: Statements that may run at once; requests arriving meanwhile wait for the next one.
    """

    def __init__(self, pool: asyncpg.Pool, max_in_flight: int = 2) -> None:
        self.pool = pool
        self.max_in_flight = max_in_flight
        self._queue: list[_Waiter] = []
        self._flushers: set[asyncio.Task[None]] = set()

    async def hit(self, key_id: str, limit: int) -> RateDecision:
        """Count one request against its key's current window."""
        future: asyncio.Future[RateDecision] = asyncio.get_running_loop().create_future()
        self._queue.append((key_id, limit, future))
        # A flusher that has just finished stays in the set until its done-callback runs: count only live ones,
        # or a request queued in that instant would wait for the next request to flush it.
        if sum(not flusher.done() for flusher in self._flushers) < self.max_in_flight:
            flusher = asyncio.create_task(self._flush())
            self._flushers.add(flusher)
            flusher.add_done_callback(self._flushers.discard)
        return await future

    async def _flush(self) -> None:
        while self._queue:
            batch, self._queue = self._queue, []
            await self._count(batch)

    async def _count(self, batch: list[_Waiter]) -> None:
        """One statement for the whole batch; the first request of a window also records ``last_used_at``."""
        wanted: dict[str, int] = {}
        for key_id, _, _ in batch:
            wanted[key_id] = wanted.get(key_id, 0) + 1
        try:
            async with self.pool.acquire() as conn:
                rows = await conn.fetch(_HIT_SQL, list(wanted), list(wanted.values()))
                fresh = [r["key_id"] for r in rows if r["count"] == wanted[r["key_id"]]]
                if fresh:
                    await conn.execute("UPDATE api_keys SET last_used_at = now() WHERE key_id = ANY($1::text[])", fresh)
        except Exception as exc:
            for _, _, future in batch:
                if not future.done():
                    future.set_exception(exc)
            return
        position = {r["key_id"]: r["count"] - wanted[r["key_id"]] for r in rows}
        reset = {r["key_id"]: r["window_start"] + WINDOW_SECONDS for r in rows}
        for key_id, limit, future in batch:
            position[key_id] += 1
            if not future.done():
                future.set_result(RateDecision(limit=limit, count=position[key_id], reset=reset[key_id]))

    async def close(self) -> None:
        """Wait for the batches in flight (at shutdown, after the server has stopped taking requests)."""
        if self._flushers:
            await asyncio.gather(*self._flushers)

    async def cleanup(self) -> None:
        """Delete the windows that have ended."""
        await self.pool.execute(
            f"DELETE FROM rate_limit_counters WHERE window_start < extract(epoch FROM now()) - {WINDOW_SECONDS}"
        )


def month_bounds(now: datetime | None = None) -> tuple[datetime, datetime]:
    """Start and end (exclusive) of the current UTC calendar month, the metering period."""
    now = now or datetime.now(UTC)
    start = datetime(now.year, now.month, 1, tzinfo=UTC)
    end = datetime(now.year + (now.month == 12), now.month % 12 + 1, 1, tzinfo=UTC)
    return start, end


@dataclass(frozen=True)
class Quota:
    """An account's active tasks and metered usage this month (from the orchestrator), and its name."""

    active_tasks: int
    seconds_used: float
    tasks_billed: int
    account_name: str

    @property
    def minutes_used(self) -> float:
        """Metered minutes this month."""
        return self.seconds_used / 60


UsageCall = Callable[[str], Awaitable[orchestrator_pb2.Usage]]
"""Reads an account's usage from the task-orchestrator (``Services.usage``)."""


async def read_quota(pool: asyncpg.Pool, usage_call: UsageCall, account_id: str) -> Quota:
    """Active tasks and this month's metered usage of an account, with its name."""
    usage, name = await asyncio.gather(
        usage_call(account_id), pool.fetchval("SELECT name FROM accounts WHERE account_id = $1", account_id)
    )
    return Quota(
        active_tasks=usage.active_tasks,
        seconds_used=usage.seconds_used,
        tasks_billed=usage.tasks_billed,
        account_name=name or "",
    )


class QuotaReader:
    """Reads accounts' quotas for ``GET /v1/usage``; concurrent reads of one account share one answer."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool
        self._reading: dict[str, asyncio.Future[Quota]] = {}

    async def read(self, account_id: str, usage_call: UsageCall) -> Quota:
        """The account's quota; a call made while a read of the same account is in flight shares its answer."""
        shared = self._reading.get(account_id)
        if shared is None:
            shared = asyncio.ensure_future(read_quota(self.pool, usage_call, account_id))
            self._reading[account_id] = shared
            shared.add_done_callback(lambda _: self._reading.pop(account_id, None))
        return await asyncio.shield(shared)


def usage_view(account: Account, quota: Quota, decision: RateDecision | None) -> dict[str, Any]:
    """The body of ``GET /v1/usage``."""
    start, end = month_bounds()
    limits = account.limits
    body: dict[str, Any] = {
        "account": {"account_id": account.account_id, "name": quota.account_name, "plan": account.plan},
        "limits": limits.model_dump(),
        "period": {"start": iso(start), "end": iso(end)},
        "minutes": {
            "used": round(quota.minutes_used, 4),
            "limit": limits.monthly_minutes,
            "remaining": round(max(0.0, limits.monthly_minutes - quota.minutes_used), 4),
        },
        "tasks_billed": quota.tasks_billed,
        "concurrent_tasks": {"active": quota.active_tasks, "limit": limits.concurrent_tasks},
    }
    if decision is not None:
        body["requests"] = {"limit": decision.limit, "remaining": decision.remaining, "reset": decision.reset}
    return body
