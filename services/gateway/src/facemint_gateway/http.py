"""Response helpers: every body carries ``request_id``; errors use the public envelope."""

from __future__ import annotations

import json
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from facemint_core.errors import FacemintError, InvalidRequest
from facemint_core.taskview import render_json


def request_id(request: Request) -> str:
    """The id assigned to this request by the request-id middleware."""
    return str(request.scope.get("facemint_request_id", ""))


class _Response(JSONResponse):
    """Starlette's JSON response, with top-level :class:`RawJSON` values written as they are."""

    def render(self, content: Any) -> bytes:
        return render_json(content, super().render)


def ok(request: Request, body: dict[str, Any], status: int = 200, headers: dict[str, str] | None = None) -> Response:
    """A JSON response whose first field is ``request_id``."""
    return _Response({"request_id": request_id(request), **body}, status_code=status, headers=headers)


def error_response(request_id_value: str, exc: FacemintError, headers: dict[str, str] | None = None) -> Response:
    """The spec's error envelope ``{"error": {"code", "message", "request_id"}}``."""
    return JSONResponse(
        {"error": {"code": exc.code, "message": exc.message, "request_id": request_id_value}},
        status_code=exc.http_status,
        headers=headers,
    )


async def json_body(request: Request, max_bytes: int) -> dict[str, Any]:
    """Read and parse a JSON object body, bounded in size; InvalidRequest when malformed."""
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > max_bytes:
            raise InvalidRequest(f"request body exceeds {max_bytes} bytes")
    if not body:
        raise InvalidRequest("request body is empty: a JSON object is required")
    try:
        parsed = json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InvalidRequest(f"malformed JSON: {exc}") from None
    if not isinstance(parsed, dict):
        raise InvalidRequest("the request body must be a JSON object")
    return parsed


def account_id(request: Request) -> str:
    """The authenticated account of this request (set by the auth middleware)."""
    return str(request.scope["facemint_account"].account_id)
