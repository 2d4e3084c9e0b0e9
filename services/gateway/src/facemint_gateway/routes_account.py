"""Account self-service under ``/v1``: the caller's keys (list, create, rotate, revoke) and ``GET /v1/usage``."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from facemint_gateway.auth import Account
from facemint_gateway.contract.account import ApiKeyReply, CreatedKey, CreateKey, KeyList, RotatedKey, RotateKey, Usage
from facemint_gateway.http import created, ok, read_body
from facemint_gateway.middleware import access_state
from facemint_gateway.ratelimit import RateDecision, usage_view
from facemint_gateway.services import services

MAX_BODY_BYTES = 16 * 1024


def key_request(body: CreateKey) -> tuple[str, int | None]:
    """The name (stripped; ``""`` when absent) and lifetime of a key-creation body."""
    return (body.name or "").strip(), body.expires_in_seconds


def caller(request: Request) -> Account:
    """The authenticated account of a ``/v1`` request."""
    account: Account = request.scope["facemint_account"]
    return account


async def list_keys(request: Request) -> Response:
    """GET /v1/keys: the caller's keys (prefix and metadata; never a secret)."""
    state = access_state(request)
    return ok(request, KeyList, {"keys": await state.accounts.list_keys(caller(request).account_id)})


async def create_key(request: Request) -> Response:
    """POST /v1/keys {"name"?, "expires_in_seconds"?}: a new key; its secret is in ``key``, shown this once."""
    state = access_state(request)
    name, expires_in = key_request(await read_body(request, CreateKey, MAX_BODY_BYTES, allow_empty=True))
    new_key = await state.accounts.create_key(caller(request).account_id, name, expires_in)
    return created(request, CreatedKey, new_key, "/v1/keys")


async def rotate_key(request: Request) -> Response:
    """POST /v1/keys/{key_id}/rotate {"grace_seconds"?}: a new key; the old one expires after the grace period."""
    state = access_state(request)
    account = caller(request)
    body = await read_body(request, RotateKey, MAX_BODY_BYTES, allow_empty=True)
    rotated = await state.accounts.rotate_key(request.path_params["key_id"], account.account_id, body.grace_seconds)
    state.auth.cache.evict_account(account.account_id)
    return created(request, RotatedKey, rotated, "/v1/keys")


async def revoke_key(request: Request) -> Response:
    """POST /v1/keys/{key_id}/revoke: the key stops working at once (in every gateway process)."""
    state = access_state(request)
    account = caller(request)
    revoked = await state.accounts.revoke_key(request.path_params["key_id"], account.account_id)
    state.auth.cache.evict_account(account.account_id)
    return ok(request, ApiKeyReply, revoked)


async def usage(request: Request) -> Response:
    """GET /v1/usage: plan, limits, this month's minutes, active tasks and this key's request window."""
    state = access_state(request)
    account = caller(request)
    quota = await state.quotas.read(account.account_id, services(request).usage)
    decision: RateDecision | None = request.scope.get("facemint_rate")
    return ok(request, Usage, usage_view(account, quota, decision))


def routes() -> list[BaseRoute]:
    """The self-service routes."""
    return [
        Route("/v1/keys", list_keys, methods=["GET"]),
        Route("/v1/keys", create_key, methods=["POST"]),
        Route("/v1/keys/{key_id}/rotate", rotate_key, methods=["POST"]),
        Route("/v1/keys/{key_id}/revoke", revoke_key, methods=["POST"]),
        Route("/v1/usage", usage, methods=["GET"]),
    ]
