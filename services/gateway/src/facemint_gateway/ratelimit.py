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
- Concurrent tasks, per account: queued + running rows of ``tasks``. Checked, together with the monthly minutes,
  by :class:`TaskQuotaMiddleware` on ``POST /v1/create-detection-task`` under a per-account advisory lock that is
  held until the task has been created, so that racing requests cannot overshoot. A retry whose Idempotency-Key
  derives the creation id of a task already stored is let through: it gets that task back and creates nothing.
- Monthly minutes, per account: ``usage_monthly``, kept by a trigger on ``tasks`` (migrations 0004 and 0006).
"""

from __future__ import annotations

import asyncio
import math
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import asyncpg
from starlette.types import ASGIApp, Receive, Scope, Send

from facemint_core.errors import RateLimited
from facemint_core.timeutil import iso
from facemint_gateway.auth import Account
from facemint_gateway.http import error_response
from facemint_gateway.idempotency import derived_creation_id

WINDOW_SECONDS = 60
CREATE_TASK_PATH = "/v1/create-detection-task"

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


_QUOTA_SQL = """
SELECT (SELECT count(*) FROM tasks WHERE account_id = $1 AND status IN ('queued', 'running')) AS active,
       coalesce((SELECT seconds FROM usage_monthly WHERE account_id = $1 AND month = $2), 0) AS seconds,
       coalesce((SELECT tasks FROM usage_monthly WHERE account_id = $1 AND month = $2), 0) AS tasks,
       (SELECT name FROM accounts WHERE account_id = $1) AS name
"""


@dataclass(frozen=True)
class Quota:
    """An account's active tasks and metered usage this month."""

    active_tasks: int
    seconds_used: float
    tasks_billed: int
    account_name: str

    @property
    def minutes_used(self) -> float:
        """Metered minutes this month."""
        return self.seconds_used / 60


async def read_quota(conn: asyncpg.Connection | asyncpg.Pool, account_id: str) -> Quota:
    """Active tasks and this month's metered usage of an account."""
    row = await conn.fetchrow(_QUOTA_SQL, account_id, month_bounds()[0].date())
    assert row is not None
    return Quota(
        active_tasks=row["active"],
        seconds_used=float(row["seconds"]),
        tasks_billed=row["tasks"],
        account_name=row["name"] or "",
    )


class QuotaReader:
    """Reads accounts' quotas for ``GET /v1/usage``; concurrent reads of one account share one query."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool
        self._reading: dict[str, asyncio.Future[Quota]] = {}

    async def read(self, account_id: str) -> Quota:
        """The account's quota; a call made while a read of the same account is in flight shares its answer."""
        shared = self._reading.get(account_id)
        if shared is None:
            shared = asyncio.ensure_future(read_quota(self.pool, account_id))
            self._reading[account_id] = shared
            shared.add_done_callback(lambda _: self._reading.pop(account_id, None))
        return await asyncio.shield(shared)


def quota_refusal(account: Account, quota: Quota, task_retry_after: int) -> tuple[RateLimited, int] | None:
    """The error (and Retry-After seconds) refusing a new task, or None when the account may create one."""
    limits = account.limits
    if quota.active_tasks >= limits.concurrent_tasks:
        return (
            RateLimited(
                f"concurrent task limit reached: {quota.active_tasks} tasks are queued or running and plan "
                f"'{account.plan}' allows {limits.concurrent_tasks}; retry when one finishes"
            ),
            task_retry_after,
        )
    if quota.seconds_used >= limits.monthly_minutes * 60:
        end = month_bounds()[1]
        return (
            RateLimited(
                f"monthly minutes exhausted: {quota.minutes_used:.2f} of {limits.monthly_minutes} minutes used "
                f"on plan '{account.plan}'; the allowance renews at {iso(end)}"
            ),
            max(1, math.ceil(end.timestamp() - time.time())),
        )
    return None


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


class TaskQuotaMiddleware:
    """Refuses ``POST /v1/create-detection-task`` past the concurrent-task limit or the monthly minutes.

    The check and the creation run under ``pg_advisory_xact_lock`` keyed by the account, on a pooled connection
    whose transaction stays open until the route has answered (i.e. the orchestrator has inserted the task), so
    racing requests, in one process or several, see each other's tasks.
    """

    def __init__(self, app: ASGIApp, pool_getter: Any, task_retry_after: int, creation_ttl_seconds: int) -> None:
        self.app = app
        self.pool_getter = pool_getter
        self.task_retry_after = task_retry_after
        self.creation_ttl_seconds = creation_ttl_seconds

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        account = scope.get("facemint_account")
        if scope["type"] != "http" or scope["method"] != "POST" or scope["path"] != CREATE_TASK_PATH or not account:
            await self.app(scope, receive, send)
            return
        pool: asyncpg.Pool = self.pool_getter()
        async with pool.acquire() as conn, conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))", "tasks:" + account.account_id)
            refusal = quota_refusal(account, await read_quota(conn, account.account_id), self.task_retry_after)
            if refusal is not None and not await self._stored_before(conn, account.account_id, scope):
                error, retry_after = refusal
                rid = str(scope.get("facemint_request_id", ""))
                await error_response(rid, error, {"Retry-After": str(retry_after)})(scope, receive, send)
                return
            await self.app(scope, receive, send)

    async def _stored_before(self, conn: asyncpg.Connection, account_id: str, scope: Scope) -> bool:
        """Whether an earlier try of this request stored its task (the orchestrator will return it, ADR 9)."""
        derived = derived_creation_id(scope)
        if derived is None:
            return False
        return bool(
            await conn.fetchval(
                """SELECT EXISTS (SELECT 1 FROM tasks WHERE account_id = $1 AND creation_id = $2
                                  AND created_at >= now() - make_interval(secs => $3))""",
                account_id,
                derived,
                float(self.creation_ttl_seconds),
            )
        )
