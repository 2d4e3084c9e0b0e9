"""Plans and their limits, the gateway's accounts settings, and the authenticated caller (:class:`Account`)."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, Field, model_validator

log = logging.getLogger(__name__)


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
