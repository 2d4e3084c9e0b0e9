"""Accounts, API keys and plans: authentication of ``/v1`` (``x-api-key``) and of the admin API (bearer token).

Keys are made by :mod:`facemint_core.apikeys` (``fm_<prefix>_<secret>``), shown once, stored as ``sha256`` only.
Authentication resolves a key through :class:`KeyCache`, an in-process map from key hash to :class:`Account`
whose entries live ``auth_cache_ttl_seconds`` (5 s by default). Every change to an account or key (revocation,
rotation, plan change) is announced with ``NOTIFY facemint_accounts, '<account_id>'`` in the same transaction; each
gateway LISTENs on a dedicated connection and drops that account's entries at once, so a revocation takes effect
in every process within milliseconds. Should the listener connection be down, the TTL still bounds the delay.
A key's own expiry (the end of a rotation grace period) is checked on every request, cached or not.
"""

from facemint_gateway.auth.accounts import AccountStore, key_status, key_view
from facemint_gateway.auth.authenticator import NOTIFY_CHANNEL, Authenticator, check_admin_token, notify_change
from facemint_gateway.auth.cache import KeyCache
from facemint_gateway.auth.plans import (
    BUILTIN_PLANS,
    CUSTOM_PLANS,
    Account,
    AccountsSettings,
    PlanLimits,
    PlanOverride,
    effective_limits,
)

__all__ = [
    "BUILTIN_PLANS",
    "CUSTOM_PLANS",
    "NOTIFY_CHANNEL",
    "Account",
    "AccountStore",
    "AccountsSettings",
    "Authenticator",
    "KeyCache",
    "PlanLimits",
    "PlanOverride",
    "check_admin_token",
    "effective_limits",
    "key_status",
    "key_view",
    "notify_change",
]
