"""Accounts and keys in PostgreSQL, for the admin API and account self-service; every change is announced."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

import asyncpg

from facemint_core.apikeys import generate_key
from facemint_core.errors import Conflict, Forbidden, InvalidRequest, NotFound
from facemint_core.ids import new_id
from facemint_core.timeutil import iso, utcnow
from facemint_gateway.auth.authenticator import notify_change
from facemint_gateway.auth.plans import CUSTOM_PLANS, AccountsSettings, effective_limits

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
