"""API-key authentication of ``/v1`` requests (``x-api-key``)."""

from __future__ import annotations

from dataclasses import dataclass

import asyncpg

from facemint_core.apikeys import hash_key, looks_like_key
from facemint_core.errors import Unauthorized


@dataclass(frozen=True)
class Account:
    """The authenticated caller."""

    account_id: str
    plan: str
    key_id: str


async def authenticate(pool: asyncpg.Pool, raw_key: str | None) -> Account:
    """Resolve an API key to its account; Unauthorized when missing, malformed, unknown, revoked or expired."""
    if not raw_key:
        raise Unauthorized("missing x-api-key header")
    if not looks_like_key(raw_key):
        raise Unauthorized("invalid API key")
    row = await pool.fetchrow(
        """SELECT k.key_id, a.account_id, a.plan FROM api_keys k JOIN accounts a USING (account_id)
           WHERE k.key_hash = $1 AND k.revoked_at IS NULL AND (k.expires_at IS NULL OR k.expires_at > now())""",
        hash_key(raw_key),
    )
    if row is None:
        raise Unauthorized("invalid API key")
    return Account(account_id=row["account_id"], plan=row["plan"], key_id=row["key_id"])
