"""Plan limits checked at task creation, and monthly usage metering: both read and write only this service's tables.

- **Concurrent tasks and monthly minutes.** The gateway passes the account's plan limits in ``CreateTask``; the
  check and the insert run in one transaction under ``pg_advisory_xact_lock`` keyed by the account, so racing
  creations (through any gateway or orchestrator process) see each other's tasks. A repeated creation id returns its
  stored task before any check (ADR 9): a retry of a request that was accepted is never refused.
- **Usage.** A task is metered when it reaches a billable terminal state, in the transaction that writes that state
  (the one that produces its terminal event): ``tasks.billed_seconds`` and the account's ``usage_monthly`` row. A
  terminal state is written once, so a task is metered once. Billable: succeeded tasks, and failed ones with
  ``no_faces_detected`` (still billed, per the API); video and GIF bill the span their analysed frames covered
  (``analysed_seconds``, issue #13), images and anything shorter 1 second.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from datetime import UTC, date, datetime

import asyncpg

from facemint.orchestrator.v1 import orchestrator_pb2
from facemint_core.errors import RateLimited
from facemint_core.timeutil import iso


def month_bounds(now: datetime | None = None) -> tuple[datetime, datetime]:
    """Start and end (exclusive) of the current UTC calendar month, the metering period."""
    now = now or datetime.now(UTC)
    start = datetime(now.year, now.month, 1, tzinfo=UTC)
    end = datetime(now.year + (now.month == 12), now.month % 12 + 1, 1, tzinfo=UTC)
    return start, end


def billable_seconds(status: str, task_type: str, error_code: str | None, analysed_seconds: float | None) -> float:
    """Seconds a task in this state is billed (0: not billable)."""
    if status == "succeeded" or (status == "failed" and error_code == "no_faces_detected"):
        return max(1.0, 0.0 if task_type == "image" else analysed_seconds or 0.0)
    return 0.0


async def meter(conn: asyncpg.Connection, record: asyncpg.Record) -> None:
    """Bill a task that has just reached a terminal state (inside the transaction that wrote that state)."""
    billed = billable_seconds(record["status"], record["type"], record["error_code"], record["analysed_seconds"])
    if billed == 0:
        return
    await conn.execute("UPDATE tasks SET billed_seconds = $2 WHERE task_id = $1", record["task_id"], billed)
    completed: datetime = record["completed_at"] or datetime.now(UTC)
    await conn.execute(
        """INSERT INTO usage_monthly AS u (account_id, month, seconds, tasks) VALUES ($1, $2, $3, 1)
           ON CONFLICT (account_id, month) DO UPDATE SET seconds = u.seconds + $3, tasks = u.tasks + 1""",
        record["account_id"],
        date(completed.astimezone(UTC).year, completed.astimezone(UTC).month, 1),
        billed,
    )


_USAGE_SQL = """
SELECT (SELECT count(*) FROM tasks WHERE account_id = $1 AND status IN ('queued', 'running')) AS active,
       coalesce((SELECT seconds FROM usage_monthly WHERE account_id = $1 AND month = $2), 0) AS seconds,
       coalesce((SELECT tasks FROM usage_monthly WHERE account_id = $1 AND month = $2), 0) AS tasks
"""


@dataclass(frozen=True)
class Usage:
    """An account's active tasks and metered usage this month."""

    active_tasks: int
    seconds_used: float
    tasks_billed: int

    def to_proto(self) -> orchestrator_pb2.Usage:
        """The ``GetUsage`` answer."""
        return orchestrator_pb2.Usage(
            active_tasks=self.active_tasks, seconds_used=self.seconds_used, tasks_billed=self.tasks_billed
        )


async def read_usage(conn: asyncpg.Connection | asyncpg.Pool, account_id: str) -> Usage:
    """Active tasks and this month's metered usage of an account."""
    row = await conn.fetchrow(_USAGE_SQL, account_id, month_bounds()[0].date())
    assert row is not None
    return Usage(active_tasks=row["active"], seconds_used=float(row["seconds"]), tasks_billed=row["tasks"])


async def check_limits(conn: asyncpg.Connection, account_id: str, limits: orchestrator_pb2.TaskLimits) -> None:
    """Lock the account's creations for the rest of the transaction; raise when a new task is past its limits.

    Raises:
        RateLimited: Too many queued and running tasks, or the month's minutes are used up (with retry_after).
    """
    await conn.execute("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))", "tasks:" + account_id)
    usage = await read_usage(conn, account_id)
    if usage.active_tasks >= limits.concurrent_tasks:
        raise RateLimited(
            f"concurrent task limit reached: {usage.active_tasks} tasks are queued or running and plan "
            f"'{limits.plan}' allows {limits.concurrent_tasks}; retry when one finishes",
            retry_after=limits.retry_after_seconds,
        )
    if usage.seconds_used >= limits.monthly_minutes * 60:
        end = month_bounds()[1]
        raise RateLimited(
            f"monthly minutes exhausted: {usage.seconds_used / 60:.2f} of {limits.monthly_minutes} minutes used "
            f"on plan '{limits.plan}'; the allowance renews at {iso(end)}",
            retry_after=max(1, math.ceil(end.timestamp() - time.time())),
        )
