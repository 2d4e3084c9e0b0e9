"""Authentication of ``/v1`` by API key (cached; changes announced with NOTIFY) and of the admin API by token."""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import logging
import time
from typing import Any

import asyncpg

from facemint_core.apikeys import hash_key, looks_like_key
from facemint_core.errors import Unauthorized
from facemint_gateway.auth.cache import KeyCache
from facemint_gateway.auth.plans import Account, AccountsSettings, effective_limits

log = logging.getLogger(__name__)


NOTIFY_CHANNEL = "facemint_accounts"
"""PostgreSQL channel on which account and key changes are announced (payload: the account id)."""


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
