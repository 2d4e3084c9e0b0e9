"""The admin API under ``/admin/v1``: accounts, their keys and limits, and the configured plans.

Every request carries ``Authorization: Bearer <FACEMINT_GATEWAY_ADMIN_TOKEN>`` (checked by the access middleware;
the API is off while no token is configured). Admin requests are not rate limited.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from facemint.webhook.v1 import webhook_pb2
from facemint_core.errors import InvalidRequest, Unauthorized
from facemint_gateway.auth import Account, PlanLimits
from facemint_gateway.http import created, json_body, ok
from facemint_gateway.middleware import AccessState, access_state
from facemint_gateway.ratelimit import read_quota, usage_view
from facemint_gateway.routes_account import (
    MAX_BODY_BYTES,
    MAX_NAME_LENGTH,
    key_request,
    optional_int,
    rotate_request,
)
from facemint_gateway.services import services
from facemint_gateway.validation import list_limit, optional_str, require_str

_LIMITS = {"requests_per_minute": 1, "concurrent_tasks": 1, "monthly_minutes": 0}
_MAX_LIMIT = 10**9


def admin(request: Request) -> AccessState:
    """The access state, after checking that the middleware admitted this request as an admin request."""
    if not request.scope.get("facemint_admin"):
        raise Unauthorized("missing admin credential")
    return access_state(request)


def limit_overrides(body: dict[str, Any]) -> dict[str, int | None]:
    """The ``limits`` object of an account body: per-account overrides, ``null`` clears one."""
    raw = body.get("limits")
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise InvalidRequest("'limits' must be an object")
    unknown = sorted(set(raw) - set(_LIMITS))
    if unknown:
        raise InvalidRequest(f"unknown limit(s): {', '.join(unknown)}; allowed: {', '.join(_LIMITS)}")
    return {name: optional_int(raw, name, minimum, _MAX_LIMIT) for name, minimum in _LIMITS.items() if name in raw}


def _check_fields(body: dict[str, Any], allowed: set[str]) -> None:
    unknown = sorted(set(body) - allowed)
    if unknown:
        raise InvalidRequest(f"unknown field(s): {', '.join(unknown)}")


async def list_plans(request: Request) -> Response:
    """GET /admin/v1/plans: the configured plans and their limits."""
    return ok(request, {"plans": admin(request).accounts.plans_view()})


async def create_account(request: Request) -> Response:
    """POST /admin/v1/accounts {"name", "plan"?, "limits"?, "create_key"?}: a new account and, by default, a key."""
    state = admin(request)
    body = await json_body(request, MAX_BODY_BYTES, allow_empty=True)
    _check_fields(body, {"name", "plan", "limits", "create_key"})
    name = require_str(body, "name", MAX_NAME_LENGTH)
    plan = optional_str(body, "plan", 64) or None
    create_key = body.get("create_key", True)
    if not isinstance(create_key, bool):
        raise InvalidRequest("'create_key' must be true or false")
    account = await state.accounts.create_account(name, plan, limit_overrides(body))
    account["webhook_secret"] = await webhook_secret(request, account["account_id"])
    result: dict[str, Any] = {"account": account}
    if create_key:
        result["api_key"] = await state.accounts.create_key(account["account_id"], "default", None)
    return created(request, result, f"/admin/v1/accounts/{account['account_id']}")


async def webhook_secret(request: Request, account_id: str) -> str:
    """The account's webhook secret, from the webhook-dispatcher that owns it (made there on first use)."""
    svc = services(request)
    reply = await svc.call(svc.webhooks.GetWebhookSecret, webhook_pb2.GetWebhookSecretRequest(account_id=account_id))
    return reply.secret


async def list_accounts(request: Request) -> Response:
    """GET /admin/v1/accounts?limit=&cursor=: accounts in creation order."""
    state = admin(request)
    q = request.query_params
    page, cursor = await state.accounts.list_accounts(list_limit(q.get("limit"), 50, 500), q.get("cursor", ""))
    return ok(request, {"accounts": page, "next_cursor": cursor})


async def get_account(request: Request) -> Response:
    """GET /admin/v1/accounts/{account_id}: the account, its limits and webhook secret."""
    state = admin(request)
    account = await state.accounts.get_account(request.path_params["account_id"])
    return ok(request, {**account, "webhook_secret": await webhook_secret(request, account["account_id"])})


async def update_account(request: Request) -> Response:
    """PATCH /admin/v1/accounts/{account_id} {"name"?, "plan"?, "limits"?}: takes effect at once everywhere."""
    state = admin(request)
    body = await json_body(request, MAX_BODY_BYTES, allow_empty=True)
    _check_fields(body, {"name", "plan", "limits"})
    name = optional_str(body, "name", MAX_NAME_LENGTH) or None
    plan = optional_str(body, "plan", 64) or None
    account_id = request.path_params["account_id"]
    account = await state.accounts.update_account(account_id, name, plan, limit_overrides(body))
    state.auth.cache.evict_account(account_id)
    return ok(request, account)


async def account_usage(request: Request) -> Response:
    """GET /admin/v1/accounts/{account_id}/usage: as ``GET /v1/usage`` shows it to the account (no key window)."""
    state = admin(request)
    view = await state.accounts.get_account(request.path_params["account_id"])
    principal = Account(
        account_id=view["account_id"], plan=view["plan"], key_id="", limits=PlanLimits(**view["limits"])
    )
    quota = await read_quota(state.accounts.pool, services(request).usage, principal.account_id)
    return ok(request, usage_view(principal, quota, None))


async def list_keys(request: Request) -> Response:
    """GET /admin/v1/accounts/{account_id}/keys: the account's keys (prefix and metadata only)."""
    state = admin(request)
    account_id = request.path_params["account_id"]
    await state.accounts.get_account(account_id)
    return ok(request, {"keys": await state.accounts.list_keys(account_id)})


async def create_key(request: Request) -> Response:
    """POST /admin/v1/accounts/{account_id}/keys {"name"?, "expires_in_seconds"?}: the secret is shown once."""
    state = admin(request)
    name, expires_in = key_request(await json_body(request, MAX_BODY_BYTES, allow_empty=True))
    account_id = request.path_params["account_id"]
    new_key = await state.accounts.create_key(account_id, name, expires_in)
    return created(request, new_key, f"/admin/v1/accounts/{account_id}/keys")


async def rotate_key(request: Request) -> Response:
    """POST /admin/v1/keys/{key_id}/rotate {"grace_seconds"?}: a new key; the old one expires after the grace."""
    state = admin(request)
    grace = rotate_request(await json_body(request, MAX_BODY_BYTES, allow_empty=True), state)
    rotated = await state.accounts.rotate_key(request.path_params["key_id"], None, grace)
    state.auth.cache.evict_account(rotated["account_id"])
    return created(request, rotated, f"/admin/v1/accounts/{rotated['account_id']}/keys")


async def revoke_key(request: Request) -> Response:
    """POST /admin/v1/keys/{key_id}/revoke: the key stops working at once."""
    state = admin(request)
    revoked = await state.accounts.revoke_key(request.path_params["key_id"], None)
    state.auth.cache.evict_account(revoked["account_id"])
    return ok(request, revoked)


def routes() -> list[BaseRoute]:
    """The admin routes."""
    return [
        Route("/admin/v1/plans", list_plans, methods=["GET"]),
        Route("/admin/v1/accounts", create_account, methods=["POST"]),
        Route("/admin/v1/accounts", list_accounts, methods=["GET"]),
        Route("/admin/v1/accounts/{account_id}", get_account, methods=["GET"]),
        Route("/admin/v1/accounts/{account_id}", update_account, methods=["PATCH"]),
        Route("/admin/v1/accounts/{account_id}/usage", account_usage, methods=["GET"]),
        Route("/admin/v1/accounts/{account_id}/keys", list_keys, methods=["GET"]),
        Route("/admin/v1/accounts/{account_id}/keys", create_key, methods=["POST"]),
        Route("/admin/v1/keys/{key_id}/rotate", rotate_key, methods=["POST"]),
        Route("/admin/v1/keys/{key_id}/revoke", revoke_key, methods=["POST"]),
    ]
