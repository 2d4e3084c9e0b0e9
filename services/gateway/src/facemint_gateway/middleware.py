"""Pure ASGI middleware: request ids, the error envelope for anything that escapes, access control.

:class:`AccessMiddleware` authenticates ``/v1`` (API key) and ``/admin`` (admin token), counts every authenticated
``/v1`` request against its key's rate limit and owns the access state (:class:`AccessState`): it opens it when the
application's lifespan has started (the database pool exists then) and closes it before the lifespan ends.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import time
from collections.abc import Callable
from dataclasses import dataclass

import asyncpg
from prometheus_client import Counter, Histogram
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from facemint_core.db import keep_session
from facemint_core.errors import FacemintError, InternalError, InvalidRequest, RateLimited, ServiceUnavailable
from facemint_core.ids import new_request_id
from facemint_core.logging import request_id_var
from facemint_core.metrics import LATENCY_BUCKETS
from facemint_core.tracing import name_request_span
from facemint_gateway.auth import AccountStore, Authenticator, check_admin_token
from facemint_gateway.http import error_response
from facemint_gateway.idempotency import IdempotencyStore
from facemint_gateway.ratelimit import QuotaReader, RateLimiter
from facemint_gateway.settings import GatewaySettings

log = logging.getLogger(__name__)

HTTP_REQUESTS = Counter("facemint_gateway_http_requests_total", "HTTP requests", ["route", "method", "status"])
HTTP_LATENCY = Histogram(
    "facemint_gateway_http_request_seconds", "HTTP request latency", ["route", "method"], buckets=LATENCY_BUCKETS
)


def _route_label(scope: Scope) -> str:
    route = scope.get("route")
    return str(getattr(route, "path", "unmatched"))


_CLIENT_REQUEST_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,127}")


def _client_request_id(scope: Scope) -> str | None:
    """The client's ``x-request-id`` when it is 1-128 characters of letters, digits and ``. _ : -``; else None."""
    value = _header(scope, b"x-request-id")
    return value if value is not None and _CLIENT_REQUEST_ID.fullmatch(value) else None


class RequestContextMiddleware:
    """Assigns ``request_id`` (a client's valid ``x-request-id`` is adopted, so the response and the logs carry
    it; otherwise a new ``req_...``), refuses a NUL in the path or query string, records metrics, renders stray
    errors."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        rid = _client_request_id(scope) or new_request_id()
        scope["facemint_request_id"] = rid
        token = request_id_var.set(rid)
        start = time.perf_counter()
        status = {"code": 500, "started": False}

        async def send_wrapper(message: Message) -> None:
            if message["type"] == "http.response.start":
                # Routed by now; the tracing middleware outside ends the request's span with the response's last byte.
                name_request_span(scope.get("method", ""), _route_label(scope), rid)
                status["code"] = message["status"]
                status["started"] = True
                headers = list(message.get("headers", []))
                headers.append((b"x-request-id", rid.encode()))
                message = {**message, "headers": headers}
            await send(message)

        try:
            if "\0" in scope["path"] or b"%00" in scope.get("query_string", b""):
                raise InvalidRequest("the URL may not contain NUL characters (%00)")  # PostgreSQL cannot store them
            await self.app(scope, receive, send_wrapper)
        except Exception as exc:
            if status["started"]:
                raise
            if not isinstance(exc, FacemintError):
                log.exception("unhandled error")
                exc = InternalError("internal error; retry with backoff")
            await error_response(rid, exc)(scope, receive, send_wrapper)
        finally:
            method = scope.get("method", "")
            route = _route_label(scope)
            HTTP_REQUESTS.labels(route, method, str(status["code"])).inc()
            HTTP_LATENCY.labels(route, method).observe(time.perf_counter() - start)
            request_id_var.reset(token)


RATE_LIMITED = Counter("facemint_gateway_rate_limited_total", "Requests refused by the per-key rate limit")
_DATABASE_ERRORS = (OSError, asyncio.TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError)


@dataclass
class AccessState:
    """Authentication, limits and idempotency of the running gateway (``app.state.access``)."""

    settings: GatewaySettings
    hot_pool: asyncpg.Pool
    auth: Authenticator
    limiter: RateLimiter
    quotas: QuotaReader
    accounts: AccountStore
    idempotency: IdempotencyStore
    janitor: asyncio.Task[None] | None = None

    @classmethod
    async def open(cls, settings: GatewaySettings, pool: asyncpg.Pool) -> AccessState:
        """Build the state and start the change listener and the janitor.

        Every authenticated request counts against its key in PostgreSQL, so the hot path (key lookups, the
        counter upsert, usage reads) gets its own small pool, so that it never waits behind the transactions of
        writes to accounts and keys, which stay on the app's pool.
        """
        cfg = settings.accounts
        hot = await asyncpg.create_pool(
            settings.database.dsn,
            min_size=1,
            max_size=cfg.hot_pool_size,
            command_timeout=10,
            reset=keep_session,
        )
        assert hot is not None
        state = cls(
            settings=settings,
            hot_pool=hot,
            auth=Authenticator(hot, settings.database.dsn, cfg),
            limiter=RateLimiter(hot, cfg.rate_limit_statements_in_flight),
            quotas=QuotaReader(hot),
            accounts=AccountStore(pool, cfg),
            idempotency=IdempotencyStore(pool, cfg.idempotency_ttl_seconds, cfg.idempotency_lock_seconds),
        )
        await state.auth.start()
        state.janitor = asyncio.create_task(state._janitor(cfg.janitor_interval_seconds))
        return state

    async def _janitor(self, interval: float) -> None:
        """Delete ended rate-limit windows and expired idempotency records, periodically."""
        while True:
            await asyncio.sleep(interval)
            try:
                await self.limiter.cleanup()
                await self.idempotency.cleanup()
            except _DATABASE_ERRORS:
                log.warning("janitor failed; will retry", exc_info=True)

    async def close(self) -> None:
        """Stop the janitor, let rate-limit batches in flight finish, stop the listener, close the hot pool."""
        if self.janitor is not None:
            self.janitor.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.janitor
        await self.limiter.close()
        await self.auth.close()
        await self.hot_pool.close()


def access_state(request: Request) -> AccessState:
    """The AccessState of the running app."""
    state: AccessState = request.app.state.access
    return state


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", []):
        if key == name:
            return str(value.decode("latin-1").strip())
    return None


class AccessMiddleware:
    """Authenticates ``/v1`` and ``/admin``, applies the per-key rate limit, owns the :class:`AccessState`.

    For ``/v1`` the account goes to ``scope["facemint_account"]`` and the rate-limit decision to
    ``scope["facemint_rate"]``; every response to an authenticated request carries the ``X-RateLimit-*`` headers.
    For ``/admin`` a valid admin token sets ``scope["facemint_admin"]``. Other paths (health, metrics, dashboard
    assets) pass through.
    """

    def __init__(self, app: ASGIApp, settings: GatewaySettings, pool_getter: Callable[[], asyncpg.Pool]) -> None:
        self.app = app
        self.settings = settings
        self.pool_getter = pool_getter
        self.state: AccessState | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(scope, receive, send)
            return
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        if path.startswith("/admin/"):
            check_admin_token(self.settings.admin_token, _header(scope, b"authorization"))
            scope["facemint_admin"] = True
        elif path.startswith("/v1/"):
            await self._api_request(scope, receive, send)
            return
        await self.app(scope, receive, send)

    async def _api_request(self, scope: Scope, receive: Receive, send: Send) -> None:
        state = self.state
        if state is None:
            raise ServiceUnavailable("the gateway is starting")
        try:
            account = await state.auth.authenticate(_header(scope, b"x-api-key"))
            decision = await state.limiter.hit(account.key_id, account.limits.requests_per_minute)
        except _DATABASE_ERRORS:
            log.warning("authentication or rate limiting failed", exc_info=True)
            raise ServiceUnavailable("authentication is temporarily unavailable; retry with backoff") from None
        scope["facemint_account"] = account
        scope["facemint_rate"] = decision
        rate_headers = decision.headers()
        if not decision.allowed:
            RATE_LIMITED.inc()
            error = RateLimited(
                f"rate limit of {decision.limit} requests per minute exceeded for key {account.key_id}; "
                f"retry after {decision.retry_after()} s"
            )
            headers = {k.decode(): v.decode() for k, v in rate_headers}
            headers["Retry-After"] = str(decision.retry_after())
            await error_response(str(scope.get("facemint_request_id", "")), error, headers)(scope, receive, send)
            return

        started = False

        async def send_with_limits(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                message = {**message, "headers": [*message.get("headers", []), *rate_headers]}
            await send(message)

        try:
            await self.app(scope, receive, send_with_limits)
        except Exception as exc:  # raised by an inner middleware or a bug: rendered here, with the limit headers
            if started:
                raise
            if not isinstance(exc, FacemintError):
                log.exception("unhandled error")
                exc = InternalError("internal error; retry with backoff")
            await error_response(str(scope.get("facemint_request_id", "")), exc)(scope, receive, send_with_limits)

    async def _lifespan(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Open the state once the app has started (its pool exists); close it when shutdown begins."""

        async def lifespan_receive() -> Message:
            message = await receive()
            if message["type"] == "lifespan.shutdown" and self.state is not None:
                await self.state.close()
                self.state = None
            return message

        async def lifespan_send(message: Message) -> None:
            if message["type"] == "lifespan.startup.complete":
                self.state = await AccessState.open(self.settings, self.pool_getter())
                scope["app"].state.access = self.state
            await send(message)

        await self.app(scope, lifespan_receive, lifespan_send)
