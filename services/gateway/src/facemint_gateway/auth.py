"""Accounts, API keys and plans: authentication of ``/v1`` (``x-api-key``) and of the admin API (bearer token).

Keys are made by :mod:`facemint_core.apikeys` (``fm_<prefix>_<secret>``), shown once, stored as ``sha256`` only.
Authentication resolves a key through :class:`KeyCache`, an in-process map from key hash to :class:`Account`
whose entries live ``auth_cache_ttl_seconds`` (5 s by default). Every change to an account or key (revocation,
rotation, plan change) is announced with ``NOTIFY facemint_accounts, '<account_id>'`` in the same transaction; each
gateway LISTENs on a dedicated connection and drops that account's entries at once, so a revocation takes effect
in every process within milliseconds. Should the listener connection be down, the TTL still bounds the delay.
A key's own expiry (the end of a rotation grace period) is checked on every request, cached or not.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import asyncpg
from pydantic import BaseModel, Field, model_validator

from facemint_core.apikeys import generate_key, hash_key, looks_like_key
from facemint_core.errors import Conflict, Forbidden, InvalidRequest, NotFound, Unauthorized
from facemint_core.ids import new_id
from facemint_core.timeutil import iso, utcnow

log = logging.getLogger(__name__)

NOTIFY_CHANNEL = "facemint_accounts"
"""PostgreSQL channel on which account and key changes are announced (payload: the account id)."""


class PlanLimits(BaseModel):
    """The limits of a plan: requests per minute (per key), concurrent tasks and monthly minutes (per account)."""

    requests_per_minute: int = Field(gt=0)
    concurrent_tasks: int = Field(gt=0)
    monthly_minutes: int = Field(ge=0)


class PlanOverride(BaseModel):
    """Configured values of a plan; unset fields keep the built-in value (a new plan must set all three)."""

    requests_per_minute: int | None = Field(default=None, gt=0)
    concurrent_tasks: int | None = Field(default=None, gt=0)
    monthly_minutes: int | None = Field(default=None, ge=0)


BUILTIN_PLANS: dict[str, PlanLimits] = {
    "free": PlanLimits(requests_per_minute=60, concurrent_tasks=2, monthly_minutes=60),
    "starter": PlanLimits(requests_per_minute=300, concurrent_tasks=8, monthly_minutes=1_000),
    "scale": PlanLimits(requests_per_minute=1_200, concurrent_tasks=32, monthly_minutes=10_000),
    # Custom per contract: these are the defaults until limits are set on the account (PATCH /admin/v1/accounts).
    "enterprise": PlanLimits(requests_per_minute=1_200, concurrent_tasks=32, monthly_minutes=10_000),
}
CUSTOM_PLANS = frozenset({"enterprise"})


class AccountsSettings(BaseModel):
    """Accounts, keys, plans, rate limits and idempotency (``FACEMINT_GATEWAY_ACCOUNTS__*``)."""

    plans: dict[str, PlanOverride] = Field(default_factory=dict)
    default_plan: str = "free"
    auth_cache_ttl_seconds: float = Field(default=5.0, ge=0, le=300)
    auth_cache_max_entries: int = Field(default=10_000, ge=1)
    rotation_grace_seconds: int = Field(default=24 * 3600, ge=0)
    max_rotation_grace_seconds: int = Field(default=7 * 24 * 3600, ge=0)
    max_keys_per_account: int = Field(default=20, ge=1)
    idempotency_ttl_seconds: int = Field(default=24 * 3600, ge=60)
    idempotency_lock_seconds: float = Field(default=60.0, gt=0)
    janitor_interval_seconds: float = Field(default=60.0, gt=0)
    hot_pool_size: int = Field(default=8, ge=1, le=100)
    rate_limit_statements_in_flight: int = Field(default=2, ge=1, le=32)
    task_retry_after_seconds: int = Field(default=5, ge=1)

    @model_validator(mode="after")
    def _check(self) -> AccountsSettings:
        for name, override in self.plans.items():
            if name not in BUILTIN_PLANS and None in override.model_dump().values():
                raise ValueError(f"plan '{name}' is new: set requests_per_minute, concurrent_tasks and monthly_minutes")
        if self.default_plan not in self.effective_plans():
            raise ValueError(f"default_plan '{self.default_plan}' is not a configured plan")
        if self.rotation_grace_seconds > self.max_rotation_grace_seconds:
            raise ValueError("rotation_grace_seconds exceeds max_rotation_grace_seconds")
        return self

    def effective_plans(self) -> dict[str, PlanLimits]:
        """The built-in plans with the configured values applied, plus configured new plans."""
        plans = dict(BUILTIN_PLANS)
        for name, override in self.plans.items():
            values = {k: v for k, v in override.model_dump().items() if v is not None}
            base = plans[name].model_dump() if name in plans else {}
            plans[name] = PlanLimits(**{**base, **values})
        return plans


@dataclass(frozen=True)
class Account:
    """The authenticated caller: its account, the key used and the limits that apply."""

    account_id: str
    plan: str
    key_id: str
    limits: PlanLimits
    key_expires_at: float | None = None  # unix seconds; None: no expiry


def effective_limits(plans: Mapping[str, PlanLimits], default_plan: str, row: Mapping[str, Any]) -> PlanLimits:
    """The limits of an account row: its plan's values, overridden by the account's own non-null columns."""
    base = plans.get(row["plan"])
    if base is None:
        log.warning("account on an unknown plan; using the default plan", extra={"plan": row["plan"]})
        base = plans[default_plan]
    values = base.model_dump()
    for name in values:
        if row.get(name) is not None:
            values[name] = row[name]
    return PlanLimits(**values)


@dataclass
class _Entry:
    account: Account | None  # None: no such active key (negative entry)
    stored_at: float


class KeyCache:
    """Key hash -> Account, each entry kept ``ttl`` seconds; bounded, oldest entries dropped first."""

    def __init__(self, ttl: float, max_entries: int) -> None:
        self.ttl = ttl
        self.max_entries = max_entries
        self._entries: dict[str, _Entry] = {}

    def get(self, key_hash: str) -> _Entry | None:
        """A fresh entry, or None when absent or stale."""
        entry = self._entries.get(key_hash)
        if entry is None:
            return None
        if time.monotonic() - entry.stored_at >= self.ttl:
            del self._entries[key_hash]
            return None
        return entry

    def put(self, key_hash: str, account: Account | None) -> None:
        """Remember the outcome of a lookup."""
        if self.ttl <= 0:
            return
        while len(self._entries) >= self.max_entries:
            self._entries.pop(next(iter(self._entries)))
        self._entries[key_hash] = _Entry(account, time.monotonic())

    def evict_account(self, account_id: str) -> None:
        """Drop every entry of an account (after a change announced on :data:`NOTIFY_CHANNEL`)."""
        stale = [h for h, e in self._entries.items() if e.account is not None and e.account.account_id == account_id]
        for key_hash in stale:
            del self._entries[key_hash]

    def clear(self) -> None:
        """Drop everything (e.g. after the change listener reconnected and may have missed notifications)."""
        self._entries.clear()


_LOOKUP_SQL = """
SELECT k.key_id, k.expires_at, a.account_id, a.plan, a.requests_per_minute, a.concurrent_tasks, a.monthly_minutes
FROM api_keys k JOIN accounts a USING (account_id)
WHERE k.key_hash = $1 AND k.revoked_at IS NULL AND (k.expires_at IS NULL OR k.expires_at > now())
"""


class Authenticator:
    """Resolves API keys through the cache; keeps the cache in step with changes made by any gateway."""

    def __init__(self, pool: asyncpg.Pool, dsn: str, settings: AccountsSettings) -> None:
        self.pool = pool
        self.dsn = dsn
        self.settings = settings
        self.plans = settings.effective_plans()
        self.cache = KeyCache(settings.auth_cache_ttl_seconds, settings.auth_cache_max_entries)
        self._listener: asyncpg.Connection | None = None
        self._listen_task: asyncio.Task[None] | None = None

    async def authenticate(self, raw_key: str | None) -> Account:
        """Resolve an API key to its account; Unauthorized when missing, malformed, unknown, revoked or expired."""
        if not raw_key:
            raise Unauthorized("missing x-api-key header")
        if not looks_like_key(raw_key):
            raise Unauthorized("invalid API key")
        key_hash = hash_key(raw_key)
        entry = self.cache.get(key_hash)
        if entry is None:
            row = await self.pool.fetchrow(_LOOKUP_SQL, key_hash)
            account = None
            if row is not None:
                expires = row["expires_at"]
                account = Account(
                    account_id=row["account_id"],
                    plan=row["plan"],
                    key_id=row["key_id"],
                    limits=effective_limits(self.plans, self.settings.default_plan, row),
                    key_expires_at=expires.timestamp() if expires is not None else None,
                )
            self.cache.put(key_hash, account)
        else:
            account = entry.account
        if account is None:
            raise Unauthorized("invalid API key")
        if account.key_expires_at is not None and account.key_expires_at <= time.time():
            raise Unauthorized("invalid API key: it has expired")
        return account

    async def start(self) -> None:
        """Start listening for account and key changes (reconnecting in the background when the link drops)."""
        self._listen_task = asyncio.create_task(self._listen_forever())

    async def close(self) -> None:
        """Stop listening."""
        if self._listen_task is not None:
            self._listen_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._listen_task
        if self._listener is not None and not self._listener.is_closed():
            await self._listener.close()

    def _on_notify(self, _conn: Any, _pid: int, _channel: str, payload: str) -> None:
        self.cache.evict_account(payload)

    async def _listen_forever(self, retry_seconds: float = 2.0) -> None:
        while True:
            try:
                await self._listen_once()
                log.warning("account change listener lost its connection; reconnecting")
            except (OSError, asyncpg.PostgresError) as exc:
                log.warning("account change listener cannot connect", extra={"error": str(exc)})
            await asyncio.sleep(retry_seconds)

    async def _listen_once(self) -> None:
        """Connect, LISTEN, and return when the connection is lost."""
        lost = asyncio.Event()
        self._listener = await asyncpg.connect(self.dsn)
        self._listener.add_termination_listener(lambda _conn: lost.set())
        await self._listener.add_listener(NOTIFY_CHANNEL, self._on_notify)
        self.cache.clear()  # anything announced while not listening is forgotten
        await lost.wait()


def check_admin_token(configured: str, authorization: str | None) -> None:
    """Check ``Authorization: Bearer <token>`` against the configured admin token (constant time)."""
    if not configured:
        raise Unauthorized("the admin API is disabled: set FACEMINT_GATEWAY_ADMIN_TOKEN")
    scheme, _, token = (authorization or "").partition(" ")
    if scheme.lower() != "bearer" or not token:
        raise Unauthorized("missing admin credential: send Authorization: Bearer <admin token>")
    if not hmac.compare_digest(token.strip().encode(), configured.encode()):
        raise Unauthorized("invalid admin credential")


async def notify_change(conn: asyncpg.Connection, account_id: str) -> None:
    """Announce a change of an account or its keys (delivered when the transaction commits)."""
    await conn.execute("SELECT pg_notify($1, $2)", NOTIFY_CHANNEL, account_id)


# ---------------------------------------------------------------------------------------------------------------
# Accounts and keys in PostgreSQL (used by the admin API and account self-service)

_KEY_COLUMNS = "key_id, account_id, prefix, name, created_at, expires_at, revoked_at, last_used_at, replaced_by"
_ACCOUNT_COLUMNS = "account_id, name, plan, requests_per_minute, concurrent_tasks, monthly_minutes, created_at"
_LIMIT_FIELDS = ("requests_per_minute", "concurrent_tasks", "monthly_minutes")


def key_status(row: Mapping[str, Any], now: datetime) -> str:
    """``active``, ``rotated`` (replaced, still valid during its grace period), ``expired`` or ``revoked``."""
    if row["revoked_at"] is not None:
        return "revoked"
    if row["expires_at"] is not None and row["expires_at"] <= now:
        return "expired"
    if row["replaced_by"] is not None:
        return "rotated"
    return "active"


def key_view(row: Mapping[str, Any], now: datetime | None = None) -> dict[str, Any]:
    """A key as listed: its id, display prefix and metadata, never its hash or secret."""
    return {
        "key_id": row["key_id"],
        "account_id": row["account_id"],
        "prefix": row["prefix"],
        "name": row["name"],
        "status": key_status(row, now or utcnow()),
        "created_at": iso(row["created_at"]),
        "expires_at": iso(row["expires_at"]) or None,
        "revoked_at": iso(row["revoked_at"]) or None,
        "last_used_at": iso(row["last_used_at"]) or None,
        "replaced_by": row["replaced_by"],
    }


class AccountStore:
    """Reads and writes of accounts and keys; every change is announced to the gateways' key caches."""

    def __init__(self, pool: asyncpg.Pool, settings: AccountsSettings) -> None:
        self.pool = pool
        self.settings = settings
        self.plans = settings.effective_plans()

    def account_view(self, row: Mapping[str, Any]) -> dict[str, Any]:
        """An account with its plan, the limits in force and its own overrides."""
        return {
            "account_id": row["account_id"],
            "name": row["name"],
            "plan": row["plan"],
            "limits": effective_limits(self.plans, self.settings.default_plan, row).model_dump(),
            "overrides": {name: row[name] for name in _LIMIT_FIELDS},
            "created_at": iso(row["created_at"]),
        }

    def plans_view(self) -> list[dict[str, Any]]:
        """Every configured plan and its limits."""
        return [
            {"plan": name, "custom": name in CUSTOM_PLANS, **limits.model_dump()} for name, limits in self.plans.items()
        ]

    def _check_plan(self, plan: str) -> str:
        if plan not in self.plans:
            raise InvalidRequest(f"'plan' must be one of {', '.join(self.plans)}")
        return plan

    async def create_account(self, name: str, plan: str | None, overrides: Mapping[str, int | None]) -> dict[str, Any]:
        """Create an account; returns its view (its webhook secret is the webhook-dispatcher's)."""
        row = await self.pool.fetchrow(
            f"""INSERT INTO accounts (account_id, name, plan, requests_per_minute, concurrent_tasks, monthly_minutes)
                VALUES ($1, $2, $3, $4, $5, $6) RETURNING {_ACCOUNT_COLUMNS}""",
            new_id("acct"),
            name,
            self._check_plan(plan or self.settings.default_plan),
            *(overrides.get(name) for name in _LIMIT_FIELDS),
        )
        assert row is not None
        return self.account_view(row)

    async def list_accounts(self, limit: int, cursor: str) -> tuple[list[dict[str, Any]], str | None]:
        """A page of accounts ordered by id (ids are time-ordered) and the cursor of the next page."""
        rows = await self.pool.fetch(
            f"SELECT {_ACCOUNT_COLUMNS} FROM accounts WHERE account_id > $1 ORDER BY account_id LIMIT $2",
            cursor,
            limit + 1,
        )
        page = [self.account_view(r) for r in rows[:limit]]
        return page, (page[-1]["account_id"] if len(rows) > limit else None)

    async def get_account(self, account_id: str) -> dict[str, Any]:
        """One account; NotFound when absent."""
        row = await self.pool.fetchrow(f"SELECT {_ACCOUNT_COLUMNS} FROM accounts WHERE account_id = $1", account_id)
        if row is None:
            raise NotFound(f"account {account_id} does not exist")
        return self.account_view(row)

    async def update_account(
        self, account_id: str, name: str | None, plan: str | None, overrides: Mapping[str, int | None]
    ) -> dict[str, Any]:
        """Change the name, plan and/or limit overrides (a None override clears it); announces the change."""
        sets: list[str] = []
        args: list[Any] = [account_id]
        for column, value in (("name", name), ("plan", self._check_plan(plan) if plan is not None else None)):
            if value is not None:
                args.append(value)
                sets.append(f"{column} = ${len(args)}")
        for column in _LIMIT_FIELDS:
            if column in overrides:
                args.append(overrides[column])
                sets.append(f"{column} = ${len(args)}")
        if not sets:
            raise InvalidRequest("nothing to change: send name, plan and/or limits")
        async with self.pool.acquire() as conn, conn.transaction():
            row = await conn.fetchrow(
                f"UPDATE accounts SET {', '.join(sets)} WHERE account_id = $1 RETURNING {_ACCOUNT_COLUMNS}", *args
            )
            if row is None:
                raise NotFound(f"account {account_id} does not exist")
            await notify_change(conn, account_id)
        return self.account_view(row)

    async def list_keys(self, account_id: str) -> list[dict[str, Any]]:
        """An account's keys, newest first (prefix and metadata only)."""
        rows = await self.pool.fetch(
            f"SELECT {_KEY_COLUMNS} FROM api_keys WHERE account_id = $1 ORDER BY created_at DESC, key_id",
            account_id,
        )
        now = utcnow()
        return [key_view(r, now) for r in rows]

    async def _insert_key(
        self, conn: asyncpg.Connection, account_id: str, name: str, expires_at: datetime | None
    ) -> tuple[asyncpg.Record, str]:
        for _ in range(5):
            new = generate_key()
            try:
                async with conn.transaction():  # a savepoint: a key_id collision (40 random bits) is retried
                    row = await conn.fetchrow(
                        f"""INSERT INTO api_keys (key_id, account_id, prefix, key_hash, name, expires_at)
                            VALUES ($1, $2, $3, $4, $5, $6) RETURNING {_KEY_COLUMNS}""",
                        new.key_id,
                        account_id,
                        new.prefix,
                        new.key_hash,
                        name,
                        expires_at,
                    )
            except asyncpg.UniqueViolationError:
                continue
            assert row is not None
            return row, new.raw
        raise Conflict("could not allocate a unique key id; retry")

    async def create_key(self, account_id: str, name: str, expires_in_seconds: int | None) -> dict[str, Any]:
        """Issue a key; the returned ``key`` field holds the secret, which is not stored and never shown again."""
        async with self.pool.acquire() as conn, conn.transaction():
            account = await conn.fetchval(
                "SELECT account_id FROM accounts WHERE account_id = $1 FOR UPDATE", account_id
            )
            if account is None:
                raise NotFound(f"account {account_id} does not exist")
            active = await conn.fetchval(
                """SELECT count(*) FROM api_keys WHERE account_id = $1 AND revoked_at IS NULL
                   AND (expires_at IS NULL OR expires_at > now())""",
                account_id,
            )
            if active >= self.settings.max_keys_per_account:
                raise Conflict(
                    f"the account already has {active} active keys (the most allowed is "
                    f"{self.settings.max_keys_per_account}); revoke one first"
                )
            expires = utcnow() + timedelta(seconds=expires_in_seconds) if expires_in_seconds else None
            row, raw = await self._insert_key(conn, account_id, name, expires)
        return {**key_view(row), "key": raw}

    async def _locked_key(self, conn: asyncpg.Connection, key_id: str, account_id: str | None) -> asyncpg.Record:
        row = await conn.fetchrow(f"SELECT {_KEY_COLUMNS} FROM api_keys WHERE key_id = $1 FOR UPDATE", key_id)
        if row is None:
            raise NotFound(f"key {key_id} does not exist")
        if account_id is not None and row["account_id"] != account_id:
            raise Forbidden(f"key {key_id} belongs to another account")
        return row

    async def rotate_key(self, key_id: str, account_id: str | None, grace_seconds: int | None) -> dict[str, Any]:
        """Replace a key by a new one; the old key keeps working for the grace period, then expires.

        Args:
            key_id: The key to rotate.
            account_id: The caller's account (Forbidden when the key is another's); None for the admin API.
            grace_seconds: How long the old key stays valid (default from settings; 0 ends it now).
        """
        grace = self.settings.rotation_grace_seconds if grace_seconds is None else grace_seconds
        if not 0 <= grace <= self.settings.max_rotation_grace_seconds:
            raise InvalidRequest(
                f"'grace_seconds' must be an integer from 0 to {self.settings.max_rotation_grace_seconds}"
            )
        async with self.pool.acquire() as conn, conn.transaction():
            old = await self._locked_key(conn, key_id, account_id)
            status = key_status(old, utcnow())
            if status != "active":
                detail = f" (replaced by {old['replaced_by']})" if status == "rotated" else ""
                raise Conflict(f"key {key_id} is {status}{detail}: only an active key can be rotated")
            new_row, raw = await self._insert_key(conn, old["account_id"], old["name"], None)
            old_after = await conn.fetchrow(
                f"""UPDATE api_keys SET replaced_by = $2,
                        expires_at = least(coalesce(expires_at, 'infinity'), now() + make_interval(secs => $3))
                    WHERE key_id = $1 RETURNING {_KEY_COLUMNS}""",
                key_id,
                new_row["key_id"],
                float(grace),
            )
            await notify_change(conn, old["account_id"])
        assert old_after is not None
        return {**key_view(new_row), "key": raw, "previous": key_view(old_after)}

    async def revoke_key(self, key_id: str, account_id: str | None) -> dict[str, Any]:
        """Revoke a key now (idempotent); Forbidden when the key belongs to another account than ``account_id``."""
        async with self.pool.acquire() as conn, conn.transaction():
            old = await self._locked_key(conn, key_id, account_id)
            row = await conn.fetchrow(
                f"""UPDATE api_keys SET revoked_at = coalesce(revoked_at, now())
                    WHERE key_id = $1 RETURNING {_KEY_COLUMNS}""",
                key_id,
            )
            await notify_change(conn, old["account_id"])
        assert row is not None
        return key_view(row)
