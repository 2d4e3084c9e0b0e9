"""PostgreSQL access of the dispatcher: deliveries, their persisted schedule and attempts, and webhook secrets.

A delivery is claimed by moving ``next_attempt_at`` to the end of the attempt's lease in the same statement that
selects it (``FOR UPDATE SKIP LOCKED``) and records the attempt as started; the backoff delay before the next attempt
is set only when the outcome is recorded. If the dispatcher dies before that, the delivery becomes due again as soon
as the lease has passed (not at the backoff slot the attempt would have used had it failed); the unfinished attempt
is then recorded as interrupted and counts towards ``max_attempts``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime

import asyncpg

from facemint.webhook.v1 import webhook_pb2
from facemint_core.errors import Conflict, Forbidden
from facemint_core.ids import new_id
from facemint_core.timeutil import iso
from facemint_core.tracing import current_traceparent
from facemint_webhook_dispatcher.signing import generate_secret

INTERRUPTED = "interrupted: the dispatcher stopped before the outcome was recorded"

PENDING, DELIVERED, FAILED, GONE = "pending", "delivered", "failed", "gone"

_EXPIRE = """
WITH exhausted AS (
    UPDATE webhook_deliveries SET state = 'failed', next_attempt_at = NULL, completed_at = now()
    WHERE state = 'pending' AND next_attempt_at <= now() AND attempt_count > cardinality(schedule_seconds)
    RETURNING delivery_id
), interrupted AS (
    UPDATE webhook_attempts SET finished_at = now(), error = $1
    WHERE delivery_id IN (SELECT delivery_id FROM exhausted) AND finished_at IS NULL
)
SELECT count(*) FROM exhausted"""

# One statement: lock due deliveries, move their next_attempt_at to the end of the lease, record the unfinished
# attempt of a taken-over delivery as interrupted, and start the new attempt.
_CLAIM = """
WITH due AS (
    SELECT delivery_id FROM webhook_deliveries
    WHERE state = 'pending' AND next_attempt_at <= now() AND attempt_count <= cardinality(schedule_seconds)
    ORDER BY next_attempt_at
    LIMIT $1
    FOR UPDATE SKIP LOCKED
), claimed AS (
    UPDATE webhook_deliveries d
    SET attempt_count = d.attempt_count + 1,
        next_attempt_at = now() + make_interval(secs => $2)
    FROM due, webhook_secrets s
    WHERE d.delivery_id = due.delivery_id AND s.account_id = d.account_id
    RETURNING d.delivery_id, d.task_id, d.event, d.url, d.payload, d.attempt_count AS number,
              cardinality(d.schedule_seconds) + 1 AS max_attempts, d.event_at, d.redelivery_of IS NULL AS original,
              d.traceparent,
              s.secret, CASE WHEN s.previous_expires_at > now() THEN s.previous END AS previous_secret
), interrupted AS (
    UPDATE webhook_attempts SET finished_at = now(), error = $3
    WHERE delivery_id IN (SELECT delivery_id FROM claimed) AND finished_at IS NULL
), started AS (
    INSERT INTO webhook_attempts (delivery_id, number, attempted_at) SELECT delivery_id, number, now() FROM claimed
)
SELECT * FROM claimed"""

# One statement: record the outcome unless the attempt was taken over, then settle the delivery.
_FINISH = """
WITH attempt AS (
    UPDATE webhook_attempts SET finished_at = now(), status_code = $3, latency_seconds = $4, error = $5
    WHERE delivery_id = $1 AND number = $2 AND finished_at IS NULL
    RETURNING delivery_id
)
UPDATE webhook_deliveries
SET state = $6,
    next_attempt_at = CASE WHEN $6 = 'pending' THEN now() + make_interval(secs => schedule_seconds[$2]) END,
    completed_at = CASE WHEN $6 <> 'pending' THEN now() END
WHERE delivery_id IN (SELECT delivery_id FROM attempt) AND attempt_count = $2 AND state = 'pending'"""

_INSERT = """
INSERT INTO webhook_deliveries
    (delivery_id, account_id, task_id, event, url, payload, schedule_seconds, next_attempt_at, event_at, redelivery_of,
     traceparent)
VALUES ($1, $2, $3, $4, $5, $6, $7, now(), coalesce($8, now()), $9, $10)
ON CONFLICT (task_id, event) WHERE redelivery_of IS NULL DO NOTHING"""

_SECRET_COLUMNS = """secret, rotated_at,
    CASE WHEN previous_expires_at > now() THEN previous END AS previous,
    CASE WHEN previous_expires_at > now() THEN previous_expires_at END AS expires"""

# An account's secret is made on first use: when it is first read, rotated, or a delivery is made for it.
_ENSURE_SECRET = "INSERT INTO webhook_secrets (account_id, secret) VALUES ($1, $2) ON CONFLICT (account_id) DO NOTHING"


@dataclass(frozen=True)
class Claim:
    """One attempt that this dispatcher now owns."""

    delivery_id: str
    task_id: str
    event: str
    url: str
    payload: bytes
    number: int
    max_attempts: int
    event_at: datetime
    original: bool
    secret: str
    previous_secret: str | None
    traceparent: str | None


@dataclass(frozen=True)
class NewDelivery:
    """A delivery to insert for a terminal task event."""

    account_id: str
    task_id: str
    event: str
    url: str
    payload: bytes
    schedule_seconds: list[float]
    event_at: datetime | None
    traceparent: str | None = None


def build_payload(event: str, task_id: str, status: str, task_json: bytes) -> bytes:
    """The request body: ``{"event", "task_id", "status", "result"}`` with the public task as ``result``, written
    as the orchestrator rendered it (not parsed and encoded again: most of it is the task's result).

    Raises:
        ValueError: ``task_json`` is not a JSON object.
    """
    task_json = task_json.strip()
    if not (task_json.startswith(b"{") and task_json.endswith(b"}")):
        raise ValueError("the task is not a JSON object")
    head = {"event": event, "task_id": task_id, "status": status, "result": None}
    encoded = json.dumps(head, separators=(",", ":"), ensure_ascii=False).encode()
    return encoded[: -len(b"null}")] + task_json + b"}"


class DeliveryStore:
    """Deliveries, attempts and secrets in PostgreSQL."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    async def insert(self, new: NewDelivery) -> bool:
        """Insert the delivery of an event; False when the event already has one (a redelivered event)."""
        async with self.pool.acquire() as conn, conn.transaction():
            await conn.execute(_ENSURE_SECRET, new.account_id, generate_secret())
            status = await conn.execute(
                _INSERT,
                new_id("dlv"),
                new.account_id,
                new.task_id,
                new.event,
                new.url,
                new.payload,
                new.schedule_seconds,
                new.event_at,
                None,
                new.traceparent,
            )
        return bool(status == "INSERT 0 1")

    async def claim(self, limit: int, lease_seconds: float) -> list[Claim]:
        """Claim up to ``limit`` due deliveries and start an attempt of each."""
        rows = await self.pool.fetch(_CLAIM, limit, lease_seconds, INTERRUPTED)
        return [Claim(**dict(r)) for r in rows]

    async def finish(self, claim: Claim, state: str, status_code: int | None, latency: float, error: str) -> bool:
        """Record an attempt's outcome and the delivery's new state (``pending`` schedules the next attempt).

        Returns:
            False when the attempt's lease had already been taken over (the outcome is then not recorded).
        """
        done = await self.pool.execute(_FINISH, claim.delivery_id, claim.number, status_code, latency, error, state)
        return bool(done == "UPDATE 1")

    async def expire_interrupted(self) -> int:
        """Give up deliveries whose last allowed attempt was interrupted and whose lease has ended; return how many."""
        return int(await self.pool.fetchval(_EXPIRE, INTERRUPTED))

    async def backlog(self) -> tuple[int, float]:
        """Deliveries still pending (waiting for an attempt or in flight), and the seconds since the oldest one's
        task reached its terminal state (0 when none is pending)."""
        row = await self.pool.fetchrow(
            """SELECT count(*) AS n, coalesce(extract(epoch FROM now() - min(event_at)), 0) AS age
               FROM webhook_deliveries WHERE state = 'pending'"""
        )
        return int(row["n"]), max(0.0, float(row["age"]))

    async def _check_owner(self, conn: asyncpg.Connection, account_id: str, task_id: str) -> None:
        """Forbidden when the task's deliveries are another account's. Whether the task exists and whose it is
        is the task-orchestrator's to say: the gateway asks it before calling here."""
        owner = await conn.fetchval("SELECT account_id FROM webhook_deliveries WHERE task_id = $1 LIMIT 1", task_id)
        if owner is not None and owner != account_id:
            raise Forbidden(f"task {task_id} belongs to another account")

    async def list_for_task(self, account_id: str, task_id: str) -> list[webhook_pb2.Delivery]:
        """Every delivery of a task (the original first, then redeliveries) with its attempts.

        Raises:
            Forbidden: The task's deliveries belong to another account.
        """
        async with self.pool.acquire() as conn:
            await self._check_owner(conn, account_id, task_id)
            rows = await conn.fetch(
                """SELECT *, cardinality(schedule_seconds) + 1 AS max_attempts FROM webhook_deliveries
                   WHERE task_id = $1 ORDER BY created_at, delivery_id""",
                task_id,
            )
            return await self._with_attempts(conn, rows)

    async def _with_attempts(self, conn: asyncpg.Connection, rows: list[asyncpg.Record]) -> list[webhook_pb2.Delivery]:
        attempts = await conn.fetch(
            "SELECT * FROM webhook_attempts WHERE delivery_id = ANY($1) ORDER BY number",
            [r["delivery_id"] for r in rows],
        )
        by_delivery: dict[str, list[webhook_pb2.Attempt]] = {}
        for a in attempts:
            by_delivery.setdefault(a["delivery_id"], []).append(
                webhook_pb2.Attempt(
                    number=a["number"],
                    attempted_at=iso(a["attempted_at"]),
                    status_code=a["status_code"] or 0,
                    latency_seconds=a["latency_seconds"] or 0.0,
                    error=a["error"] if a["finished_at"] is not None else "in flight",
                )
            )
        return [
            webhook_pb2.Delivery(
                delivery_id=r["delivery_id"],
                task_id=r["task_id"],
                event=r["event"],
                url=r["url"],
                state=r["state"],
                next_attempt_at=iso(r["next_attempt_at"]) if r["state"] == PENDING else "",
                attempts=by_delivery.get(r["delivery_id"], []),
                created_at=iso(r["created_at"]),
                redelivery_of=r["redelivery_of"] or "",
                max_attempts=r["max_attempts"],
                completed_at=iso(r["completed_at"]),
            )
            for r in rows
        ]

    async def redeliver(self, account_id: str, task_id: str, schedule_seconds: list[float]) -> webhook_pb2.Delivery:
        """Send a task's webhook again.

        A pending delivery that waits for its next attempt is made due now; one with an attempt in flight is left
        alone. Otherwise a new delivery (new delivery id, fresh schedule, same body and URL) repeats the original.

        Raises:
            Forbidden: The task's deliveries belong to another account.
            Conflict: The task has no webhook to repeat (no callback_url, or not terminal yet).
        """
        async with self.pool.acquire() as conn, conn.transaction():
            await self._check_owner(conn, account_id, task_id)
            latest = await conn.fetchrow(
                """SELECT d.*, EXISTS (SELECT 1 FROM webhook_attempts a
                                       WHERE a.delivery_id = d.delivery_id AND a.finished_at IS NULL) AS in_flight
                   FROM webhook_deliveries d WHERE task_id = $1 ORDER BY created_at DESC, delivery_id DESC
                   LIMIT 1 FOR UPDATE""",
                task_id,
            )
            if latest is None:
                raise Conflict(f"task {task_id} has no webhook: it has no callback_url or is not finished yet")
            delivery_id = latest["delivery_id"]
            if latest["state"] == PENDING:
                if not latest["in_flight"]:
                    await conn.execute(
                        "UPDATE webhook_deliveries SET next_attempt_at = now() WHERE delivery_id = $1", delivery_id
                    )
            else:
                delivery_id = new_id("dlv")
                await conn.execute(
                    _INSERT,
                    delivery_id,
                    latest["account_id"],
                    task_id,
                    latest["event"],
                    latest["url"],
                    latest["payload"],
                    schedule_seconds,
                    latest["event_at"],
                    latest["redelivery_of"] or latest["delivery_id"],
                    current_traceparent(),  # attempts of a redelivery join the trace of the request for it
                )
            row = await conn.fetchrow(
                """SELECT *, cardinality(schedule_seconds) + 1 AS max_attempts FROM webhook_deliveries
                   WHERE delivery_id = $1""",
                delivery_id,
            )
            return (await self._with_attempts(conn, [row]))[0]

    async def get_secret(self, account_id: str) -> webhook_pb2.WebhookSecret:
        """The account's secret (made now if it has none yet), and the previous one while its rotation window is
        open."""
        async with self.pool.acquire() as conn, conn.transaction():
            await conn.execute(_ENSURE_SECRET, account_id, generate_secret())
            row = await conn.fetchrow(
                f"SELECT {_SECRET_COLUMNS} FROM webhook_secrets WHERE account_id = $1", account_id
            )
        return _secret_message(row)

    async def rotate_secret(self, account_id: str, new_secret: str, grace_seconds: int) -> webhook_pb2.WebhookSecret:
        """Replace the secret; the old one keeps signing for ``grace_seconds`` (any older one is dropped)."""
        async with self.pool.acquire() as conn, conn.transaction():
            await conn.execute(_ENSURE_SECRET, account_id, generate_secret())
            row = await conn.fetchrow(
                f"""UPDATE webhook_secrets SET previous = secret, secret = $2,
                           previous_expires_at = now() + make_interval(secs => $3), rotated_at = now()
                    WHERE account_id = $1 RETURNING {_SECRET_COLUMNS}""",
                account_id,
                new_secret,
                float(grace_seconds),
            )
        return _secret_message(row)


def _secret_message(row: asyncpg.Record | None) -> webhook_pb2.WebhookSecret:
    assert row is not None
    return webhook_pb2.WebhookSecret(
        secret=row["secret"],
        previous_secret=row["previous"] or "",
        previous_expires_at=iso(row["expires"]),
        rotated_at=iso(row["rotated_at"]),
    )
