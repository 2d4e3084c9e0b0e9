"""Pure ASGI middleware: request ids, the error envelope for anything that escapes, authentication of /v1."""

from __future__ import annotations

import logging
import time
from typing import Any

from prometheus_client import Counter, Histogram
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from facemint_core.errors import FacemintError, InternalError
from facemint_core.ids import new_request_id
from facemint_core.logging import request_id_var
from facemint_core.metrics import LATENCY_BUCKETS
from facemint_gateway.auth import authenticate
from facemint_gateway.http import error_response

log = logging.getLogger(__name__)

HTTP_REQUESTS = Counter("facemint_gateway_http_requests_total", "HTTP requests", ["route", "method", "status"])
HTTP_LATENCY = Histogram(
    "facemint_gateway_http_request_seconds", "HTTP request latency", ["route", "method"], buckets=LATENCY_BUCKETS
)


def _route_label(scope: Scope) -> str:
    route = scope.get("route")
    return str(getattr(route, "path", "unmatched"))


class RequestContextMiddleware:
    """Assigns ``request_id`` (echoing a valid ``x-request-id``), records metrics, renders stray errors."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        rid = new_request_id()
        scope["facemint_request_id"] = rid
        token = request_id_var.set(rid)
        start = time.perf_counter()
        status = {"code": 500, "started": False}

        async def send_wrapper(message: Message) -> None:
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
                status["started"] = True
                headers = list(message.get("headers", []))
                headers.append((b"x-request-id", rid.encode()))
                message = {**message, "headers": headers}
            await send(message)

        try:
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


class AuthMiddleware:
    """Authenticates every ``/v1`` request by its ``x-api-key`` and stores the account in the scope."""

    def __init__(self, app: ASGIApp, pool_getter: Any) -> None:
        self.app = app
        self.pool_getter = pool_getter

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"].startswith("/v1/"):
            raw = None
            for key, value in scope.get("headers", []):
                if key == b"x-api-key":
                    raw = value.decode("latin-1").strip()
            scope["facemint_account"] = await authenticate(self.pool_getter(), raw)
        await self.app(scope, receive, send)
