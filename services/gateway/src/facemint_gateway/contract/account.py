"""The caller's own account under ``/v1``: API keys (list, create, rotate, revoke) and usage."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from facemint_gateway.contract.base import Reply, ReplyModel, RequestModel, Timestamp

KEY_NAME_MAX = 100
MAX_KEY_LIFETIME_SECONDS = 10 * 365 * 24 * 3600


class CreateKey(RequestModel):
    """The body of ``POST /v1/keys`` (may be empty)."""

    name: str | None = Field(None, max_length=KEY_NAME_MAX, description="A display name.")
    expires_in_seconds: int | None = Field(
        None, ge=60, le=MAX_KEY_LIFETIME_SECONDS, description="Lifetime; default: until revoked."
    )

    examples = [{"name": "ci", "expires_in_seconds": 2592000}]


class RotateKey(RequestModel):
    """The body of ``POST /v1/keys/{key_id}/rotate`` (may be empty)."""

    grace_seconds: int | None = Field(
        None,
        ge=0,
        description="How long the old key keeps working (default and maximum: the deployment's settings, "
        "by default 1 day and 7 days).",
    )

    examples = [{"grace_seconds": 3600}]


class ApiKey(ReplyModel):
    """An API key as listed: its prefix and metadata, never its secret."""

    key_id: str
    account_id: str
    prefix: str = Field(description="The first characters of the key, to recognise it.")
    name: str
    status: Literal["active", "expired", "revoked", "rotated"]
    created_at: Timestamp
    expires_at: Timestamp | None
    revoked_at: Timestamp | None
    last_used_at: Timestamp | None
    replaced_by: str | None = Field(description="The key that replaced it by rotation.")

    examples = [
        {"key_id": "key_01J9ZC8W3Q", "account_id": "acct_01J9ZC7K2M", "prefix": "fm_live_3kd9", "name": "ci",
         "status": "active", "created_at": "2026-04-21T09:30:00Z", "expires_at": None, "revoked_at": None,
         "last_used_at": "2026-04-21T10:02:11Z", "replaced_by": None}
    ]  # fmt: skip


class ApiKeyReply(Reply, ApiKey):
    """A key after a change (``POST /v1/keys/{key_id}/revoke``)."""

    examples = [{"request_id": "req_7f2b1a4c8d", **ApiKey.examples[0], "status": "revoked",
                 "revoked_at": "2026-04-22T08:00:00Z"}]  # fmt: skip


class NewKey(ApiKey):
    """A new key with its secret, which is shown in this answer only."""

    key: str | None = Field(
        description="The secret: send it as x-api-key. Shown once: null in a replay of the request with the same "
        "Idempotency-Key (secrets are never stored)."
    )


class CreatedKey(Reply, NewKey):
    """``201`` of ``POST /v1/keys``."""

    examples = [{"request_id": "req_7f2b1a4c8d", **ApiKey.examples[0], "last_used_at": None,
                 "key": "fm_live_3kd9Xb2mQ7v8LrT1wYc0NzPq"}]  # fmt: skip


class RotatedKey(CreatedKey):
    """``201`` of a rotation: the replacement key, and the old key (working for the grace period) in ``previous``."""

    previous: ApiKey

    examples = [
        {**CreatedKey.examples[0], "key_id": "key_01JA0D1F5R",
         "previous": {**ApiKey.examples[0], "status": "rotated", "expires_at": "2026-04-21T10:30:00Z",
                      "replaced_by": "key_01JA0D1F5R"}}
    ]  # fmt: skip


class KeyList(Reply):
    """``GET /v1/keys``."""

    keys: list[ApiKey]

    examples = [{"request_id": "req_7f2b1a4c8d", "keys": ApiKey.examples}]


class PlanLimits(ReplyModel):
    """The limits in force."""

    requests_per_minute: int = Field(description="Per key.")
    concurrent_tasks: int = Field(description="Per account: queued and running tasks.")
    monthly_minutes: int = Field(description="Per account: media minutes per calendar month (UTC).")


class UsageAccount(ReplyModel):
    """Whose usage."""

    account_id: str
    name: str
    plan: str


class Period(ReplyModel):
    """The billing month (UTC)."""

    start: Timestamp
    end: Timestamp


class Minutes(ReplyModel):
    """Media minutes this month."""

    used: float
    limit: int
    remaining: float


class ConcurrentTasks(ReplyModel):
    """Tasks queued or running now."""

    active: int
    limit: int


class RequestWindow(ReplyModel):
    """This key's current rate-limit window (as the X-RateLimit-* headers)."""

    limit: int
    remaining: int
    reset: int = Field(description="Unix seconds when the window ends.")


class Usage(Reply):
    """``GET /v1/usage``: plan, limits and consumption."""

    account: UsageAccount
    limits: PlanLimits
    period: Period
    minutes: Minutes
    tasks_billed: int
    concurrent_tasks: ConcurrentTasks
    requests: RequestWindow | None = Field(None, description="Absent where no key window applies (admin view).")

    examples = [
        {"request_id": "req_7f2b1a4c8d",
         "account": {"account_id": "acct_01J9ZC7K2M", "name": "Acme", "plan": "starter"},
         "limits": {"requests_per_minute": 300, "concurrent_tasks": 8, "monthly_minutes": 1000},
         "period": {"start": "2026-04-01T00:00:00Z", "end": "2026-05-01T00:00:00Z"},
         "minutes": {"used": 12.5, "limit": 1000, "remaining": 987.5}, "tasks_billed": 40,
         "concurrent_tasks": {"active": 1, "limit": 8},
         "requests": {"limit": 300, "remaining": 299, "reset": 1776763860}}
    ]  # fmt: skip
