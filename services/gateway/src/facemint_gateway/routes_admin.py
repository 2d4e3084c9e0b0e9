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
from facemint_core.errors import Unauthorized
from facemint_gateway.auth import Account, PlanLimits
from facemint_gateway.contract import admin as contract
from facemint_gateway.contract.account import ApiKeyReply, CreatedKey, CreateKey, KeyList, RotatedKey, RotateKey, Usage
from facemint_gateway.contract.base import parse
from facemint_gateway.http import created, ok, read_body
from facemint_gateway.middleware import AccessState, access_state
from facemint_gateway.ratelimit import read_quota, usage_view
from facemint_gateway.routes_account import MAX_BODY_BYTES, key_request
from facemint_gateway.services import services


def admin(request: Request) -> AccessState:
    """The access state, after checking that the middleware admitted this request as an admin request."""
    if not request.scope.get("facemint_admin"):
        raise Unauthorized("missing admin credential")
    return access_state(request)


async def list_plans(request: Request) -> Response:
    """GET /admin/v1/plans: the configured plans and their limits."""
    return ok(request, contract.PlanList, {"plans": admin(request).accounts.plans_view()})


async def create_account(request: Request) -> Response:
    """POST /admin/v1/accounts {"name", "plan"?, "limits"?, "create_key"?}: a new account and, by default, a key."""
    state = admin(request)
    body = await read_body(request, contract.CreateAccount, MAX_BODY_BYTES, allow_empty=True)
    account = await state.accounts.create_account(body.name, body.plan, contract.overrides(body.limits))
    account["webhook_secret"] = await webhook_secret(request, account["account_id"])
    result: dict[str, Any] = {"account": account}
    if body.create_key:
        result["api_key"] = await state.accounts.create_key(account["account_id"], "default", None)
    return created(request, contract.CreatedAccount, result, f"/admin/v1/accounts/{account['account_id']}")


async def webhook_secret(request: Request, account_id: str) -> str:
    """The account's webhook secret, from the webhook-dispatcher that owns it (made there on first use)."""
    svc = services(request)
    reply = await svc.call(svc.webhooks.GetWebhookSecret, webhook_pb2.GetWebhookSecretRequest(account_id=account_id))
    return reply.secret


async def list_accounts(request: Request) -> Response:
    """GET /admin/v1/accounts?limit=&cursor=: accounts in creation order."""
    state = admin(request)
    q = parse(contract.AdminPage, dict(request.query_params))
    page, cursor = await state.accounts.list_accounts(q.limit, q.cursor)
    return ok(request, contract.AccountList, {"accounts": page, "next_cursor": cursor})


async def get_account(request: Request) -> Response:
    """GET /admin/v1/accounts/{account_id}: the account, its limits and webhook secret."""
    state = admin(request)
    account = await state.accounts.get_account(request.path_params["account_id"])
    secret = await webhook_secret(request, account["account_id"])
    return ok(request, contract.AccountWithSecretReply, {**account, "webhook_secret": secret})


async def update_account(request: Request) -> Response:
    """PATCH /admin/v1/accounts/{account_id} {"name"?, "plan"?, "limits"?}: takes effect at once everywhere."""
    state = admin(request)
    body = await read_body(request, contract.UpdateAccount, MAX_BODY_BYTES, allow_empty=True)
    account_id = request.path_params["account_id"]
    account = await state.accounts.update_account(account_id, body.name, body.plan, contract.overrides(body.limits))
    state.auth.cache.evict_account(account_id)
    return ok(request, contract.AccountReply, account)


async def account_usage(request: Request) -> Response:
    """GET /admin/v1/accounts/{account_id}/usage: as ``GET /v1/usage`` shows it to the account (no key window)."""
    state = admin(request)
    view = await state.accounts.get_account(request.path_params["account_id"])
    principal = Account(
        account_id=view["account_id"], plan=view["plan"], key_id="", limits=PlanLimits(**view["limits"])
    )
    quota = await read_quota(state.accounts.pool, services(request).usage, principal.account_id)
    return ok(request, Usage, usage_view(principal, quota, None))


async def list_keys(request: Request) -> Response:
    """GET /admin/v1/accounts/{account_id}/keys: the account's keys (prefix and metadata only)."""
    state = admin(request)
    account_id = request.path_params["account_id"]
    await state.accounts.get_account(account_id)
    return ok(request, KeyList, {"keys": await state.accounts.list_keys(account_id)})


async def create_key(request: Request) -> Response:
    """POST /admin/v1/accounts/{account_id}/keys {"name"?, "expires_in_seconds"?}: the secret is shown once."""
    state = admin(request)
    name, expires_in = key_request(await read_body(request, CreateKey, MAX_BODY_BYTES, allow_empty=True))
    account_id = request.path_params["account_id"]
    new_key = await state.accounts.create_key(account_id, name, expires_in)
    return created(request, CreatedKey, new_key, f"/admin/v1/accounts/{account_id}/keys")


async def rotate_key(request: Request) -> Response:
    """POST /admin/v1/keys/{key_id}/rotate {"grace_seconds"?}: a new key; the old one expires after the grace."""
    state = admin(request)
    body = await read_body(request, RotateKey, MAX_BODY_BYTES, allow_empty=True)
    rotated = await state.accounts.rotate_key(request.path_params["key_id"], None, body.grace_seconds)
    state.auth.cache.evict_account(rotated["account_id"])
    return created(request, RotatedKey, rotated, f"/admin/v1/accounts/{rotated['account_id']}/keys")


async def revoke_key(request: Request) -> Response:
    """POST /admin/v1/keys/{key_id}/revoke: the key stops working at once."""
    state = admin(request)
    revoked = await state.accounts.revoke_key(request.path_params["key_id"], None)
    state.auth.cache.evict_account(revoked["account_id"])
    return ok(request, ApiKeyReply, revoked)


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
