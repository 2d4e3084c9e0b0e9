"""The gateway's Starlette application."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware.cors import CORSMiddleware
from starlette.middleware.gzip import GZipMiddleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from facemint_core.errors import FacemintError, InvalidRequest, NotFound, RateLimited
from facemint_core.lifecycle import ServiceRuntime, ops_routes
from facemint_gateway import (
    dashboard,
    routes_account,
    routes_admin,
    routes_docs,
    routes_library,
    routes_tasks,
    routes_uploads,
    routes_webhooks,
)
from facemint_gateway.http import error_response, request_id
from facemint_gateway.idempotency import IdempotencyMiddleware
from facemint_gateway.middleware import AccessMiddleware, RequestContextMiddleware
from facemint_gateway.services import Services
from facemint_gateway.settings import GatewaySettings

# Each module contributes its routes through a ``routes()`` function.
ROUTE_MODULES = (
    routes_docs,
    routes_tasks,
    routes_library,
    routes_uploads,
    routes_account,
    routes_admin,
    routes_webhooks,
    dashboard,
)


async def _facemint_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, FacemintError)
    retry_after = exc.retry_after if isinstance(exc, RateLimited) else 0
    return error_response(request_id(request), exc, {"Retry-After": str(retry_after)} if retry_after else None)


def _allowed_methods(request: Request) -> list[str]:
    """Every method some route serves on the request's path (Starlette's own 405 names one route's only)."""
    methods: set[str] = set()
    for route in request.app.routes:
        if isinstance(route, Route) and route.path_regex.match(request.url.path) and route.methods:
            methods |= route.methods
    return sorted(methods)


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    if exc.status_code == 404:
        return error_response(request_id(request), NotFound(f"no route {request.method} {request.url.path}"))
    if exc.status_code == 405:
        err = InvalidRequest(f"method {request.method} is not allowed on {request.url.path}")
        resp = error_response(request_id(request), err, {"Allow": ", ".join(_allowed_methods(request))})
        resp.status_code = 405
        return resp
    return error_response(request_id(request), InvalidRequest(str(exc.detail)))


EXPOSED_HEADERS = (
    "X-RateLimit-Limit", "X-RateLimit-Remaining", "X-RateLimit-Reset", "Retry-After", "Location", "x-request-id",
    "Idempotent-Replayed",
)  # fmt: skip
"""Response headers a browser script on an allowed origin may read."""


def create_app(settings: GatewaySettings, runtime: ServiceRuntime | None = None) -> Starlette:
    """Build the application; the lifespan opens the pool and channels and registers readiness checks."""
    holder: dict[str, Services] = {}

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        svc = await Services.open(settings)
        store = settings.object_store
        sweeper = asyncio.create_task(routes_uploads.sweep_forever(store)) if store.endpoint else None
        holder["svc"] = svc
        app.state.services = svc
        if runtime is not None:

            async def database() -> None:
                await svc.pool.fetchval("SELECT 1")

            runtime.readiness.add("database", database)
            runtime.readiness.add("task queue", svc.check_task_queue)
        try:
            yield
        finally:
            if sweeper is not None:
                sweeper.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await sweeper
            await svc.close()

    routes: list[BaseRoute] = []
    for module in ROUTE_MODULES:
        routes += module.routes()
    if runtime is not None:
        routes += ops_routes(runtime.readiness)
    app = Starlette(
        routes=routes,
        lifespan=lifespan,
        exception_handlers={FacemintError: _facemint_error, HTTPException: _http_error},
    )
    # Outermost last: request id -> gzip -> CORS -> authentication and rate limit -> idempotency -> routes.
    # Idempotency records keep the uncompressed body.
    app.add_middleware(
        IdempotencyMiddleware, store_getter=lambda: app.state.access.idempotency, max_body_bytes=settings.max_body_bytes
    )
    app.add_middleware(AccessMiddleware, settings=settings, pool_getter=lambda: holder["svc"].pool)
    if settings.cors_allow_origins:  # outside authentication: a preflight carries no key
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_allow_origins,
            allow_methods=["GET", "POST", "PATCH", "DELETE"],
            allow_headers=["x-api-key", "content-type", "idempotency-key", "x-request-id"],
            expose_headers=list(EXPOSED_HEADERS),
            max_age=600,
        )
    app.add_middleware(GZipMiddleware, minimum_size=settings.gzip_min_bytes)
    app.add_middleware(RequestContextMiddleware)
    return app
