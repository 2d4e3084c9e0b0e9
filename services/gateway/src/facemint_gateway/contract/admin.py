"""The admin API under ``/admin/v1``: accounts, their keys and limits, and the configured plans.

Not part of the public document (``/openapi.json`` describes what an API key reaches); the same rules apply:
these models validate the admin bodies and shape the admin answers.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import Field

from facemint_gateway.contract.account import KEY_NAME_MAX, NewKey, PlanLimits
from facemint_gateway.contract.base import NOT_BLANK, QueryModel, Reply, ReplyModel, RequestModel, Timestamp

MAX_LIMIT = 10**9
PLAN_MAX = 64

AccountName = Annotated[str, Field(min_length=1, max_length=KEY_NAME_MAX), NOT_BLANK]
PlanName = Annotated[str, Field(min_length=1, max_length=PLAN_MAX), NOT_BLANK]


class LimitOverrides(RequestModel):
    """Per-account limits replacing the plan's; ``null`` clears an override (the plan's value applies again)."""

    requests_per_minute: int | None = Field(None, ge=1, le=MAX_LIMIT)
    concurrent_tasks: int | None = Field(None, ge=1, le=MAX_LIMIT)
    monthly_minutes: int | None = Field(None, ge=0, le=MAX_LIMIT)

    def given(self) -> dict[str, int | None]:
        """The overrides the body names (a ``null`` one included: it clears)."""
        return {name: getattr(self, name) for name in sorted(self.model_fields_set)}


class CreateAccount(RequestModel):
    """The body of ``POST /admin/v1/accounts``."""

    name: AccountName
    plan: PlanName | None = Field(None, description="Default: the deployment's default plan.")
    limits: LimitOverrides | None = None
    create_key: bool = Field(True, description="Also create a first key (its secret is in the answer).")


class UpdateAccount(RequestModel):
    """The body of ``PATCH /admin/v1/accounts/{account_id}``: the fields given change."""

    name: AccountName | None = None
    plan: PlanName | None = None
    limits: LimitOverrides | None = None


class AdminPage(QueryModel):
    """Pagination of ``GET /admin/v1/accounts``."""

    limit: int = Field(50, ge=1, le=500)
    cursor: str = ""


class LimitOverridesView(ReplyModel):
    """An account's own overrides (null: the plan's value)."""

    requests_per_minute: int | None
    concurrent_tasks: int | None
    monthly_minutes: int | None


class Account(ReplyModel):
    """An account, its plan, the limits in force and its own overrides."""

    account_id: str
    name: str
    plan: str
    limits: PlanLimits
    overrides: LimitOverridesView
    created_at: Timestamp


class AccountWithSecret(Account):
    """An account and its webhook signing secret."""

    webhook_secret: str


class AccountReply(Reply, Account):
    """``PATCH /admin/v1/accounts/{account_id}``."""


class AccountWithSecretReply(Reply, AccountWithSecret):
    """``GET /admin/v1/accounts/{account_id}``."""


class CreatedAccount(Reply):
    """``201`` of ``POST /admin/v1/accounts``."""

    account: AccountWithSecret
    api_key: NewKey | None = Field(None, description="With create_key (the default).")


class AccountList(Reply):
    """``GET /admin/v1/accounts``."""

    accounts: list[Account]
    next_cursor: str | None


class Plan(PlanLimits):
    """A configured plan."""

    plan: str
    custom: bool = Field(description="Set by the deployment's configuration rather than built in.")


class PlanList(Reply):
    """``GET /admin/v1/plans``."""

    plans: list[Plan]


def overrides(limits: LimitOverrides | None) -> dict[str, Any]:
    """The overrides a body names ({} without ``limits``)."""
    return limits.given() if limits is not None else {}
