"""Account self-service under ``/v1``: the caller's keys (list, create, rotate, revoke) and ``GET /v1/usage``."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from facemint_core.errors import InvalidRequest
from facemint_gateway.auth import Account
from facemint_gateway.http import created, json_body, ok
from facemint_gateway.middleware import AccessState, access_state
from facemint_gateway.ratelimit import RateDecision, usage_view
from facemint_gateway.services import services

MAX_NAME_LENGTH = 100
MAX_KEY_LIFETIME_SECONDS = 10 * 365 * 24 * 3600
MAX_BODY_BYTES = 16 * 1024


def optional_int(body: dict[str, Any], name: str, minimum: int, maximum: int) -> int | None:
    """An optional integer field within bounds (None when absent or null)."""
    value = body.get(name)
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool) or not minimum <= value <= maximum:
        raise InvalidRequest(f"'{name}' must be an integer from {minimum} to {maximum}")
    return value


def optional_name(body: dict[str, Any]) -> str:
    """An optional display name (``""`` when absent, null or empty)."""
    name = body.get("name")
    if name is None:
        return ""
    if not isinstance(name, str) or len(name) > MAX_NAME_LENGTH:
        raise InvalidRequest(f"'name' must be a string of at most {MAX_NAME_LENGTH} characters")
    return name.strip()


def key_request(body: dict[str, Any]) -> tuple[str, int | None]:
    """The fields of a key-creation body: ``name`` and ``expires_in_seconds``."""
    unknown = sorted(set(body) - {"name", "expires_in_seconds"})
    if unknown:
        raise InvalidRequest(f"unknown field(s): {', '.join(unknown)}")
    return optional_name(body), optional_int(body, "expires_in_seconds", 60, MAX_KEY_LIFETIME_SECONDS)


def rotate_request(body: dict[str, Any], state: AccessState) -> int | None:
    """The ``grace_seconds`` of a rotation body."""
    unknown = sorted(set(body) - {"grace_seconds"})
    if unknown:
        raise InvalidRequest(f"unknown field(s): {', '.join(unknown)}")
    return optional_int(body, "grace_seconds", 0, state.settings.accounts.max_rotation_grace_seconds)


def caller(request: Request) -> Account:
    """The authenticated account of a ``/v1`` request."""
    account: Account = request.scope["facemint_account"]
    return account


async def list_keys(request: Request) -> Response:
    """GET /v1/keys: the caller's keys (prefix and metadata; never a secret)."""
    state = access_state(request)
    return ok(request, {"keys": await state.accounts.list_keys(caller(request).account_id)})


async def create_key(request: Request) -> Response:
    """POST /v1/keys {"name"?, "expires_in_seconds"?}: a new key; its secret is in ``key``, shown this once."""
    state = access_state(request)
    name, expires_in = key_request(await json_body(request, MAX_BODY_BYTES, allow_empty=True))
    new_key = await state.accounts.create_key(caller(request).account_id, name, expires_in)
    return created(request, new_key, "/v1/keys")


async def rotate_key(request: Request) -> Response:
    """POST /v1/keys/{key_id}/rotate {"grace_seconds"?}: a new key; the old one expires after the grace period."""
    state = access_state(request)
    account = caller(request)
    grace = rotate_request(await json_body(request, MAX_BODY_BYTES, allow_empty=True), state)
    rotated = await state.accounts.rotate_key(request.path_params["key_id"], account.account_id, grace)
    state.auth.cache.evict_account(account.account_id)
    return created(request, rotated, "/v1/keys")


async def revoke_key(request: Request) -> Response:
    """POST /v1/keys/{key_id}/revoke: the key stops working at once (in every gateway process)."""
    state = access_state(request)
    account = caller(request)
    revoked = await state.accounts.revoke_key(request.path_params["key_id"], account.account_id)
    state.auth.cache.evict_account(account.account_id)
    return ok(request, revoked)


async def usage(request: Request) -> Response:
    """GET /v1/usage: plan, limits, this month's minutes, active tasks and this key's request window."""
    state = access_state(request)
    account = caller(request)
    quota = await state.quotas.read(account.account_id, services(request).usage)
    decision: RateDecision | None = request.scope.get("facemint_rate")
    return ok(request, usage_view(account, quota, decision))


def routes() -> list[BaseRoute]:
    """The self-service routes."""
    return [
        Route("/v1/keys", list_keys, methods=["GET"]),
        Route("/v1/keys", create_key, methods=["POST"]),
        Route("/v1/keys/{key_id}/rotate", rotate_key, methods=["POST"]),
        Route("/v1/keys/{key_id}/revoke", revoke_key, methods=["POST"]),
        Route("/v1/usage", usage, methods=["GET"]),
    ]
